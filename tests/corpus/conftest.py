"""Shared fixtures for the corpus tests: one small generated corpus, and measurements on audio.

The measurements here are deliberately independent of the generator's own code (their own framing,
thresholds and pitch tracker), so that the tests check what the audio sounds like, not what the
manifest claims.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

SMALL_N = 60
SMALL_SEED = 11
SR = 16000


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A 60-clip corpus split by voice; generated once per test session."""
    from searchengine.corpus.generate import generate
    from searchengine.corpus.voices import available_voices

    out = tmp_path_factory.mktemp("corpus") / "small"
    generate(out, n=SMALL_N, seed=SMALL_SEED, voices=available_voices(), workers=os.cpu_count(),
             split_by_voice=True)
    return out


@pytest.fixture(scope="session")
def small_manifest(small_corpus) -> list[dict]:
    lines = (small_corpus / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def load(corpus: Path, record: dict) -> np.ndarray:
    x, sr = sf.read(str(corpus / record["path"]), dtype="float64")
    assert sr == SR and x.ndim == 1
    return x


def frame_power(x: np.ndarray, frame_s: float = 0.025) -> np.ndarray:
    hop = int(frame_s * SR)
    n = len(x) // hop
    return np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)


def active_level_db(x: np.ndarray, floor_db: float = 30.0) -> float:
    """RMS level in dBFS over the frames within `floor_db` of the loudest one."""
    p = frame_power(x)
    act = p[p >= p.max() * 10 ** (-floor_db / 10)]
    return float(10 * np.log10(act.mean() + 1e-20))


def active_duration(x: np.ndarray, floor_db: float = 30.0) -> float:
    """Seconds from the first to the last frame within `floor_db` of the loudest one."""
    p = frame_power(x, 0.01)
    idx = np.flatnonzero(p >= p.max() * 10 ** (-floor_db / 10))
    return (idx[-1] - idx[0] + 1) * 0.01


def f0_semitones(x: np.ndarray) -> np.ndarray:
    """Voiced F0 values in semitones re 1 Hz (Praat autocorrelation)."""
    import parselmouth

    pitch = parselmouth.Sound(x, SR).to_pitch(pitch_floor=50, pitch_ceiling=600)
    f = pitch.selected_array["frequency"]
    return 12 * np.log2(f[f > 0])


def voiced_share(x: np.ndarray) -> float:
    """Share of speech-active 10 ms frames that Praat finds voiced."""
    import parselmouth

    pitch = parselmouth.Sound(x, SR).to_pitch(time_step=0.01, pitch_floor=50, pitch_ceiling=600)
    f = pitch.selected_array["frequency"]
    p = frame_power(x, 0.01)
    n = min(len(f), len(p))
    offset = max(0, (len(p) - len(f)) // 2)
    active = p[offset: offset + n] >= p.max() * 10 ** (-30 / 10)
    return float(np.mean(f[:n][active] > 0)) if active.any() else 0.0


def high_band_share(x: np.ndarray, cutoff: float = 3600.0) -> float:
    """Share of the spectral energy above `cutoff` Hz."""
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[freqs > cutoff].sum() / (spec.sum() + 1e-20))


def spearman(a, b) -> float:
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="session")
def measure() -> SimpleNamespace:
    """The audio measurements above, for test modules (conftest is not importable as a module)."""
    return SimpleNamespace(load=load, frame_power=frame_power, active_level_db=active_level_db,
                           active_duration=active_duration, f0_semitones=f0_semitones,
                           voiced_share=voiced_share, high_band_share=high_band_share, spearman=spearman)
