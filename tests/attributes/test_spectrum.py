"""Bandwidth: the telephone channel the corpus renders ends near 4 kHz, a wideband voice does not."""

from __future__ import annotations

import numpy as np

from searchengine.attributes.spectrum import measure_spectrum
from searchengine.corpus.render import telephone


def _voice_like(seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    """Pulses at 120 Hz through a decaying spectrum, in syllable-like bursts: energy up to 8 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    pulses = np.zeros_like(t)
    pulses[:: sr // 120] = 1.0
    x = np.convolve(pulses, np.exp(-np.arange(200) / 40.0), mode="same") + 0.05 * rng.standard_normal(len(t))
    envelope = 0.5 * (1 + np.sign(np.sin(2 * np.pi * 4 * t)))
    return (0.3 * x * envelope).astype(np.float32)


def test_telephone_band_is_told_from_wideband() -> None:
    wide = _voice_like()
    narrow = telephone(wide)
    assert measure_spectrum(wide)["m_bandwidth_hz"] >= 7000
    assert 3400 <= measure_spectrum(narrow)["m_bandwidth_hz"] <= 4300


def test_level_does_not_move_the_edge_and_silence_has_none() -> None:
    wide = _voice_like()
    assert measure_spectrum(wide)["m_bandwidth_hz"] == measure_spectrum(wide * 0.01)["m_bandwidth_hz"]
    assert measure_spectrum(np.zeros(16000, np.float32))["m_bandwidth_hz"] is None
    assert measure_spectrum(np.ones(100, np.float32))["m_bandwidth_hz"] is None

