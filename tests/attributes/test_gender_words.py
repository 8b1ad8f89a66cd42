"""Gender from the speaker vector on voices the classifier never saw, and words that follow the numbers."""

from __future__ import annotations

import numpy as np

from searchengine.attributes.speaker import estimate_gender, gender_model, speaker_embedding
from searchengine.attributes.words import FAMILIES, caption, compute_bins, word, words_for

from .conftest import NEUTRAL, SEED


def test_gender_estimate_on_held_out_voices():
    """Voices in the val/test split of seed 11 were not used to train the committed model."""
    from searchengine.corpus.factors import Factors
    from searchengine.corpus.generate import assign_voice_splits
    from searchengine.corpus.render import render
    from searchengine.corpus.voices import available_voices

    voices = available_voices()
    splits = assign_voice_splits(voices, SEED)
    held = [v for v in voices if splits[v.id] != "train" and v.gender in ("female", "male")][:24]
    assert len(held) >= 12 and {v.gender for v in held} == {"female", "male"}
    right = 0
    for i, v in enumerate(held):
        x = render("The gardener moved the boxes to the back of the shed.", v, Factors(**NEUTRAL),
                   np.random.default_rng(i))
        est = estimate_gender(speaker_embedding(x))
        right += est["m_gender_est"] == v.gender
        assert 0.5 <= est["m_gender_prob"] <= 1.0
    assert right / len(held) >= 0.85
    assert gender_model()["heldout_clip_accuracy"] >= 0.9


def test_words_are_monotone_in_the_numbers():
    rng = np.random.default_rng(0)
    rows = [{"m_gender": g, **{f.column: float(rng.normal(100 if f.name == "pitch" and g == "male" else 200, 30))
                               for f in FAMILIES.values()}} for g in ("male", "female") for _ in range(50)]
    bins = compute_bins(rows)
    for key in ("rate", "noise", "reverb", "monotony", "pitch:male", "pitch:female"):
        assert bins[key]["source"] == "quantiles"
        words = bins[key]["words"]
        ranks = [words.index(word(bins, key, v)) for v in np.linspace(-100, 400, 200)]
        assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == 4
    # pitch is relative to gender: 150 Hz is high for a man, low for a woman
    assert words_for(bins, {"m_gender": "male", "m_f0_median_hz": 150.0})["m_pitch_word"] == "very high"
    assert words_for(bins, {"m_gender": "female", "m_f0_median_hz": 150.0})["m_pitch_word"] == "very low"


def test_few_clips_fall_back_to_default_edges():
    bins = compute_bins([{"m_gender": "female", "m_snr_db": 30.0}])
    assert bins["noise"]["source"] == "default" and word(bins, "noise", 60.0) == "very clean"


def test_measured_words_order_the_corpus(measured):
    rows = [{**r["m"], "m_gender": r["rec"]["gender"]} for r in measured]
    bins = compute_bins(rows)
    for fam in ("rate", "noise", "reverb", "monotony"):
        col = FAMILIES[fam].column
        medians = [np.median([r[col] for r in rows if r[col] is not None and word(bins, fam, r[col]) == w])
                   for w in bins[fam]["words"] if any(r[col] is not None and word(bins, fam, r[col]) == w for r in rows)]
        assert medians == sorted(medians) and len(medians) >= 4


def test_caption_reads_the_words():
    words = {"m_pitch_word": "fairly high", "m_monotony_word": None, "m_rate_word": "quickly",
             "m_noise_word": "very clean", "m_reverb_word": "close"}
    assert caption(words, "female") == "A woman with a fairly high voice speaks quickly in a very clean, close recording."
    assert caption({}, None) == "A person speaks."
