"""Level, noise and room measurements from the short-time energy of a clip.

Everything here is measured the way the corpus generator sets it (searchengine/corpus/render.py), so
that the generated ground truth can validate it: loudness is the RMS level in dBFS of the
speech-active 20 ms frames of the final mix, and SNR is the speech's active level against the noise
level. The generator knows its clean speech; a measurement does not, so "active" frames are found on
the mix itself: frames within `ACTIVE_FLOOR_DB` of the loudest frame that also stand clearly above
the noise floor (the quietest frames, which every clip has: lead-in, pauses, tail).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FRAME_S = 0.02
ACTIVE_FLOOR_DB = 35.0
"""Same window as the generator: frames within 35 dB of the loudest count as speech in clean audio."""
FLOOR_PERCENTILE = 10.0
"""The noise floor is the mean power of the quietest 10 % of frames: lead-in, tail and pauses are
about 15 % of a typical clip, so this share is noise alone, even in continuous speech."""
ABOVE_FLOOR_DB = 3.0
"""In noisy audio a frame counts as speech only if it is at least this far above the noise floor."""
CLIP_LEVEL = 0.999
"""Samples at or above this magnitude count as clipped (full scale, allowing for float rounding)."""
SNR_CAP_DB = 60.0
"""Digital silence has no measurable noise: SNRs are capped here so that clean audio sorts last, not inf."""
TAIL_HOP_S = 0.01
TAIL_FROM_S, TAIL_TO_S = 0.03, 0.2
"""The reverberant tail is read 30-200 ms after a speech offset: late enough that the direct sound
has stopped, early enough that even a dry room's tail has not sunk into the noise floor."""
OFFSET_DB = 20.0
"""A speech offset is where the energy falls from within 20 dB of the loudest frame into a pause."""
MIN_PAUSE_S = 0.2
REVERB_FLOOR_DB = -60.0


def frame_power(x: np.ndarray, frame_s: float = FRAME_S, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mean power of consecutive non-overlapping frames (float64 so that quiet frames keep precision)."""
    hop = max(1, int(round(frame_s * sr)))
    n = len(x) // hop
    if n == 0:
        return np.array([float(np.mean(np.asarray(x, np.float64) ** 2))]) if len(x) else np.zeros(1)
    return np.mean(np.asarray(x[: n * hop], np.float64).reshape(n, hop) ** 2, axis=1)


def _db(p: float | np.ndarray) -> float | np.ndarray:
    return 10.0 * np.log10(np.asarray(p) + 1e-20)


def noise_floor(power: np.ndarray) -> float:
    """Mean power of the quietest `FLOOR_PERCENTILE` % of frames."""
    k = max(1, int(len(power) * FLOOR_PERCENTILE / 100.0))
    return float(np.mean(np.sort(power)[:k]))


def active_frames(power: np.ndarray) -> np.ndarray:
    """Boolean mask of speech-active frames (see the module doc)."""
    if not len(power) or power.max() <= 0:
        return np.zeros(len(power), bool)
    near_top = power >= power.max() * 10 ** (-ACTIVE_FLOOR_DB / 10.0)
    above_floor = power >= noise_floor(power) * 10 ** (ABOVE_FLOOR_DB / 10.0)
    mask = near_top & above_floor
    return mask if mask.any() else near_top


def measure_level(x: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float | None]:
    """Loudness, peak, clipping, SNR and decay of a mono float waveform in [-1, 1].

    Returns `m_loudness_dbfs` (active-speech RMS), `m_peak_dbfs`, `m_clipping_share` (share of
    samples at full scale), `m_snr_db` (active speech vs noise floor, capped at `SNR_CAP_DB`),
    `m_reverb_db` (decay-tail level after speech offsets, see `reverb_tail_db`) and `m_active_seconds` (speech-active time, what speaking rate is divided by).
    """
    x = np.asarray(x, np.float32)
    if not len(x):
        return {k: None for k in ("m_loudness_dbfs", "m_peak_dbfs", "m_clipping_share", "m_snr_db",
                                  "m_reverb_db", "m_active_seconds")}
    power = frame_power(x, FRAME_S, sr)
    active = active_frames(power)
    speech_p = float(power[active].mean()) if active.any() else float(power.mean())
    floor_p = noise_floor(power)
    signal_p = max(speech_p - floor_p, 1e-20)
    snr = float(min(SNR_CAP_DB, _db(signal_p) - _db(floor_p))) if floor_p > 0 else SNR_CAP_DB
    peak = float(np.max(np.abs(x)))
    return {
        "m_loudness_dbfs": round(float(_db(speech_p)), 3),
        "m_peak_dbfs": round(float(_db(peak**2)), 3) if peak > 0 else -200.0,
        "m_clipping_share": round(float(np.mean(np.abs(x) >= CLIP_LEVEL)), 6),
        "m_snr_db": round(snr, 3),
        "m_reverb_db": reverb_tail_db(x, sr),
        "m_active_seconds": round(float(active.sum() * FRAME_S), 3),
    }


def reverb_tail_db(x: np.ndarray, sr: int = SAMPLE_RATE) -> float | None:
    """Energy of the decay tails after speech offsets, in dB against the active speech level.

    A C50-like reading without an impulse response: after a talker stops, a dry recording falls to
    the noise floor within a few tens of ms, while a reverberant room keeps ringing. The tail power
    30-200 ms after every offset followed by a pause of at least 200 ms (the clip's end included) is
    averaged, the noise floor is subtracted, and the result is set against the speech's level, so
    that it does not depend on loudness. Higher means more distant/reverberant. None when the clip
    has no pause to read a tail in.
    """
    p = frame_power(x, TAIL_HOP_S, sr)
    if not len(p) or p.max() <= 0:
        return None
    floor = noise_floor(p)
    loud = p >= p.max() * 10 ** (-OFFSET_DB / 10.0)
    a, b, gap = (int(round(s / TAIL_HOP_S)) for s in (TAIL_FROM_S, TAIL_TO_S, MIN_PAUSE_S))
    tails: list[float] = []
    ends = np.flatnonzero(loud[:-1] & ~loud[1:])
    for e in ends:
        following = loud[e + 1 : e + 1 + gap]
        if following.any() or len(p) - (e + 1) < b:
            continue
        tails.append(float(p[e + a : e + b].mean()))
    if not tails:
        return None
    coarse = frame_power(x, FRAME_S, sr)
    active = active_frames(coarse)
    speech = float(coarse[active].mean()) if active.any() else float(p[loud].mean())
    ratio = max(float(np.mean(tails)) - floor, speech * 10 ** (REVERB_FLOOR_DB / 10.0)) / speech
    return round(float(_db(ratio)), 3)
