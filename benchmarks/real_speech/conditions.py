"""Simulated channels for real recordings: telephone band, background noise, room reverberation.

No source with trustworthy gender labels and a clear licence offers real telephone, noisy or
far-field speech, so the set passes further utterances of its real speakers through these channels.
The voice stays real; the channel is simulated with stated parameters, which doubles as the ground
truth for descriptions that name the channel ("over the phone", "in a noisy kitchen", "echoing").
Each takes and returns 16 kHz mono float32 and is deterministic given its `rng`.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from searchengine.audio import SAMPLE_RATE, resample

CONDITIONS = ("telephone", "noisy", "reverberant")


def mu_law_round_trip(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """Encode to 8-bit mu-law (G.711) and back: the quantisation a telephone codec applies."""
    x = np.clip(x, -1.0, 1.0)
    encoded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    codes = np.round((encoded + 1.0) / 2.0 * mu)
    decoded = codes / mu * 2.0 - 1.0
    return (np.sign(decoded) * np.expm1(np.abs(decoded) * np.log1p(mu)) / mu).astype(np.float32)


def telephone(x: np.ndarray) -> tuple[np.ndarray, dict]:
    """300-3400 Hz band-pass, 8 kHz sampling, G.711 mu-law, back to 16 kHz."""
    sos = butter(6, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    narrow = resample(sosfilt(sos, x).astype(np.float32), SAMPLE_RATE, 8000)
    wide = resample(mu_law_round_trip(narrow), 8000, SAMPLE_RATE)[: len(x)]
    return wide.astype(np.float32), {"derivation": "300-3400 Hz band-pass, 8 kHz, G.711 mu-law"}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def add_noise(x: np.ndarray, noise: np.ndarray, rng: np.random.Generator,
              snr_db: tuple[float, float] = (0.0, 10.0)) -> tuple[np.ndarray, dict]:
    """Mix a random stretch of a real noise recording at a random signal-to-noise ratio in `snr_db`."""
    if len(noise) < len(x):
        noise = np.tile(noise, int(np.ceil(len(x) / len(noise))))
    start = int(rng.integers(0, len(noise) - len(x) + 1))
    piece = noise[start:start + len(x)].astype(np.float64)
    snr = float(rng.uniform(*snr_db))
    gain = _rms(x) / (_rms(piece) * 10 ** (snr / 20))
    return (x + gain * piece).astype(np.float32), {"snr_db": round(snr, 1),
                                                    "derivation": f"kitchen noise at {snr:.1f} dB SNR"}


def room_impulse_response(rt60: float, direct_to_reverb_db: float, rng: np.random.Generator) -> np.ndarray:
    """A diffuse-field impulse response: exponentially decaying noise reaching -60 dB at `rt60` s,
    after a direct-path impulse whose energy is `direct_to_reverb_db` against the reverberant energy."""
    n = int(rt60 * 1.2 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # first reflections arrive after the direct sound
    tail *= 10 ** (-direct_to_reverb_db / 20) / np.sqrt(np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def reverberate(x: np.ndarray, rng: np.random.Generator, rt60_range: tuple[float, float] = (0.4, 1.2),
                drr_range: tuple[float, float] = (-6.0, 0.0), tail_s: float = 0.5) -> tuple[np.ndarray, dict]:
    """Convolve with a simulated room (random RT60 and direct-to-reverberant ratio), keep `tail_s` of
    the decay after the speech ends (a distant recording rings on), and keep the speech's level."""
    rt60, drr = float(rng.uniform(*rt60_range)), float(rng.uniform(*drr_range))
    wet = fftconvolve(x.astype(np.float64), room_impulse_response(rt60, drr, rng))[: len(x) + int(tail_s * SAMPLE_RATE)]
    wet *= _rms(x) / _rms(wet[: len(x)])
    return wet.astype(np.float32), {
        "rt60_s": round(rt60, 2), "direct_to_reverberant_db": round(drr, 1),
        "derivation": f"simulated room, RT60 {rt60:.2f} s, direct-to-reverberant {drr:.1f} dB"}


def apply(condition: str, x: np.ndarray, rng: np.random.Generator, noise: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """One of CONDITIONS applied to `x`, with the parameters it drew; never clips (scaled down if needed)."""
    if condition == "telephone":
        y, params = telephone(x)
    elif condition == "noisy":
        if noise is None:
            raise ValueError("the noisy condition needs a noise recording")
        y, params = add_noise(x, noise, rng)
    elif condition == "reverberant":
        y, params = reverberate(x, rng)
    else:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32), params
