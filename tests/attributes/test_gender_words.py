"""Gender from the speaker vector on voices the classifier never saw, and words that follow the numbers."""

from __future__ import annotations

import numpy as np

from searchengine.attributes.speaker import estimate_gender, gender_model, speaker_embedding
from searchengine.attributes.words import FAMILIES, caption, compute_bins, word, words_for

from .conftest import NEUTRAL


def test_gender_estimate_on_held_out_voices():
    """Voices in the val/test split of seed 0 (clsp-mini's training corpus) were not used to fit the
    committed model; the estimate reads the speaker vector and F0 together and says how sure it is."""
    from searchengine.attributes.prosody import measure_prosody
    from searchengine.corpus.factors import Factors
    from searchengine.corpus.generate import assign_voice_splits
    from searchengine.corpus.render import render
    from searchengine.corpus.voices import available_voices

    voices = available_voices()
    splits = assign_voice_splits(voices, 0)
    held = [v for v in voices if splits[v.id] != "train" and v.gender in ("female", "male")][:24]
    assert len(held) >= 12 and {v.gender for v in held} == {"female", "male"}
    right, sure_and_right, sure = 0, 0, 0
    for i, v in enumerate(held):
        x = render("The gardener moved the boxes to the back of the shed.", v, Factors(**NEUTRAL),
                   np.random.default_rng(i))
        est = estimate_gender(speaker_embedding(x), measure_prosody(x)["m_f0_median_hz"])
        right += est["m_gender_est"] == v.gender
        assert 0.5 <= est["m_gender_prob"] <= 1.0
        if est["m_gender_prob"] >= 0.9:
            sure += 1
            sure_and_right += est["m_gender_est"] == v.gender
    assert right / len(held) >= 0.85
    assert sure >= len(held) // 2 and sure_and_right / sure >= right / len(held)  # confident answers are the better ones
    assert gender_model()["heldout"]["synthetic held-out voices"]["clip_accuracy"] >= 0.85


def test_gender_features_use_pitch_and_flag_its_absence():
    """F0 moves the estimate (a high pitch toward female), and a clip without F0 is marked, not read as
    a middle pitch; the speaker-vector part is the same for both."""
    from searchengine.attributes.speaker import female_probability, gender_features

    v = np.zeros((3, 256))
    v[:, 0] = 1.0
    x = gender_features(v, [110.0, 220.0, None])
    assert x.shape == (3, 258) and x[2, 256] == 0.0 and list(x[:, 257]) == [0.0, 0.0, 1.0]
    assert x[0, 256] < 0 < x[1, 256]
    p = female_probability(v, [110.0, 220.0, None])
    assert p[0] < p[1]
    est = estimate_gender(v[1], 220.0)
    assert est["m_gender_prob"] == round(max(p[1], 1 - p[1]), 4)
    assert estimate_gender(None) == {"m_gender_est": None, "m_gender_prob": None}


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
