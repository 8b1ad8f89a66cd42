"""The style factors are real: measuring the generated audio finds what the attributes say.

Each test measures the wav files (Praat F0, active durations, levels, spectra) and compares the
measurement with the requested value; nothing here trusts a number the generator wrote down. Where a
factor is relative to the voice's own default (pitch, rate), the default is measured too, by rendering
the same sentence with the same voice and neutral settings.
"""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.corpus.factors import Factors
from searchengine.corpus.render import render
from searchengine.corpus.sentences import count_syllables
from searchengine.corpus.voices import available_voices

NEUTRAL = dict(pitch_semitones=0.0, pitch_spread_semitones=None, rate_factor=1.0, loudness_dbfs=-25.0,
               whisper=False, snr_db=None, noise_color=None, reverberance=0.0, telephone=False)


def _voice(voice_id: str):
    return next(v for v in available_voices() if v.id == voice_id)


def _render(voice_id: str, text: str, **changes) -> np.ndarray:
    factors = Factors(**{**NEUTRAL, **changes})
    return render(text, _voice(voice_id), factors, np.random.default_rng(0)).astype(np.float64)


@pytest.fixture(scope="module")
def measured(small_corpus, small_manifest, measure) -> list[dict]:
    """Per clip: the record, its audio measurements, and the same sentence spoken neutrally."""
    m = measure
    rows = []
    for rec in small_manifest:
        x = m.load(small_corpus, rec)
        a = rec["attributes"]
        row = {"rec": rec, "a": a, "level": m.active_level_db(x), "high": m.high_band_share(x),
               "voiced": m.voiced_share(x), "duration": m.active_duration(x),
               "lead_db": 10 * np.log10(np.mean(x[: int(0.2 * 16000)] ** 2) + 1e-20)}
        if not a["whisper"] and (a["snr_db"] is None or a["snr_db"] >= 8):
            st = m.f0_semitones(x)
            base = _render(rec["voice"], rec["text"])
            base_st = m.f0_semitones(base)
            row.update(f0=float(np.median(st)), f0_base=float(np.median(base_st)),
                       spread=float(np.percentile(st, 90) - np.percentile(st, 10)),
                       base_duration=m.active_duration(base))
        rows.append(row)
    return rows


def test_measured_f0_follows_requested_pitch(measured):
    rows = [r for r in measured if "f0" in r]
    assert len(rows) >= 25
    requested = np.array([r["a"]["pitch_semitones"] for r in rows])
    shift = np.array([r["f0"] - r["f0_base"] for r in rows])
    assert np.corrcoef(requested, shift)[0, 1] > 0.9
    assert np.median(np.abs(shift - requested)) < 1.0
    by_bin = {b: shift[[r["a"]["pitch_level"] == b for r in rows]] for b in ("very low", "medium", "very high")}
    assert by_bin["very low"].mean() < by_bin["medium"].mean() < by_bin["very high"].mean()


def test_measured_f0_spread_follows_pitch_variation(measured, measure):
    m = measure
    rows = [r for r in measured if "spread" in r and r["a"]["pitch_spread_semitones"] is not None]
    assert len(rows) >= 20
    requested = [r["a"]["pitch_spread_semitones"] for r in rows]
    spread = np.array([r["spread"] for r in rows])
    assert m.spearman(requested, spread) > 0.7
    mono = spread[[r["a"]["pitch_variation"] == "monotone" for r in rows]]
    expr = spread[[r["a"]["pitch_variation"] == "expressive" for r in rows]]
    assert mono.mean() + 1.5 < expr.mean()


def test_engines_without_pitch_range_record_it_as_unknown(small_manifest):
    for rec in small_manifest:
        if rec["engine"] != "espeak-ng" or rec["attributes"]["whisper"]:
            assert rec["attributes"]["pitch_variation"] is None


def test_measured_duration_follows_speaking_rate(measured, measure):
    """Speech-active duration against the same sentence at normal rate, on clips whose reverb tail
    and noise floor do not blur where speech ends."""
    m = measure
    rows = [r for r in measured if "base_duration" in r and r["a"]["reverberance"] <= 40
            and (r["a"]["snr_db"] is None or r["a"]["snr_db"] >= 16)]
    assert len(rows) >= 8
    requested = np.array([r["a"]["rate_factor"] for r in rows])
    speedup = np.array([r["base_duration"] / r["duration"] for r in rows])
    assert np.corrcoef(requested, speedup)[0, 1] > 0.8
    assert np.median(np.abs(speedup / requested - 1)) < 0.15
    # syllables per second of speech: the plain listener's measure of pace
    syl_rate = [count_syllables(r["rec"]["text"]) / r["duration"] for r in rows]
    assert m.spearman(requested, syl_rate) > 0.5


@pytest.mark.parametrize("voice_id", ["espeak-ng:en-us+m3", "flite:awb"])
def test_rate_scales_speech_duration(voice_id, measure):
    if voice_id not in {v.id for v in available_voices()}:
        pytest.skip(f"{voice_id} not installed")
    text = "The little boat drifted slowly across the harbour while the market opened."
    base = measure.active_duration(_render(voice_id, text))
    for rate in (0.65, 0.8, 1.25, 1.6):
        ratio = base / measure.active_duration(_render(voice_id, text, rate_factor=rate))
        assert abs(ratio / rate - 1) < 0.1, (rate, ratio)


def test_measured_level_matches_loudness(measured, measure):
    m = measure
    requested = np.array([r["a"]["loudness_dbfs"] for r in measured])
    level = np.array([r["level"] for r in measured])
    assert m.spearman(requested, level) > 0.95
    quiet_bg = [r for r in measured if r["a"]["snr_db"] is None or r["a"]["snr_db"] >= 16]
    errors = np.array([r["level"] - r["a"]["loudness_dbfs"] for r in quiet_bg])
    assert np.abs(errors).max() < 2.0 and abs(np.median(errors)) < 0.75


def test_snr_estimated_from_the_noise_only_lead_in(measured):
    rows = [r for r in measured if r["a"]["snr_db"] is not None]
    assert len(rows) >= 15
    noise = 10 ** (np.array([r["lead_db"] for r in rows]) / 10)
    total = 10 ** (np.array([r["level"] for r in rows]) / 10)
    estimate = 10 * np.log10(np.maximum(total - noise, 1e-12) / noise)
    requested = np.array([r["a"]["snr_db"] for r in rows])
    assert np.corrcoef(requested, estimate)[0, 1] > 0.95
    assert np.median(np.abs(estimate - requested)) < 2.0
    clean = [r["lead_db"] - r["level"] for r in measured if r["a"]["snr_db"] is None]
    assert max(clean) < -50  # no noise where none was asked for


def test_telephone_clips_have_no_energy_above_the_band(measured):
    tel = [r["high"] for r in measured if r["a"]["channel"] == "telephone"]
    studio = [r["high"] for r in measured if r["a"]["channel"] == "studio"]
    assert tel and studio
    assert max(tel) < 0.01
    assert np.median(studio) > 5 * max(tel)


def test_whispered_clips_are_unvoiced(measured):
    whisper = [r["voiced"] for r in measured if r["a"]["whisper"]]
    voiced = [r["voiced"] for r in measured if r["a"]["whisper"] is False and r["a"]["snr_db"] is None]
    assert whisper, "the small corpus should contain whispered clips"
    assert max(whisper) < 0.1
    assert np.median(voiced) > 0.4


def test_reverb_adds_a_decaying_tail(measure):
    """The dry clip ends in silence; with reverb the last 0.3 s hold a tail that grows with the room."""
    text = "Please remember to bring the blue folder to the meeting on Thursday afternoon."
    tails = []
    for reverberance in (0.0, 30.0, 60.0, 95.0):
        x = _render("espeak-ng:en-us+m3", text, reverberance=reverberance)
        tail = np.mean(x[-int(0.3 * 16000):] ** 2)
        tails.append(10 * np.log10(tail + 1e-20) - measure.active_level_db(x))
    assert tails == sorted(tails), tails
    assert tails[0] < -80 and tails[-1] > -60, tails


@pytest.mark.parametrize("voice_id", ["flite:slt", "espeak-ng:en-gb+f3"])
def test_pitch_bins_move_f0_in_order(voice_id, measure):
    m = measure
    if voice_id not in {v.id for v in available_voices()}:
        pytest.skip(f"{voice_id} not installed")
    text = "The little boat drifted slowly across the harbour while the market opened."
    medians = [np.median(m.f0_semitones(_render(voice_id, text, pitch_semitones=s))) for s in (-6, -3, 0, 3, 6)]
    assert np.all(np.diff(medians) > 1.5), medians
