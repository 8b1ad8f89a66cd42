"""Pitch and speaking rate with Praat (praat-parselmouth), sharing one pitch track per clip.

Pitch is Praat's autocorrelation F0: median in Hz, spread as the 90th minus the 10th percentile of
voiced F0 in semitones (the corpus generator's own definition of pitch variation), and the share of
sounding frames that are voiced (low for whispers and noise).

Speaking rate counts syllable nuclei the way de Jong & Wempe's Praat script does (Behavior Research
Methods 41, 2009): peaks of the intensity contour that are above a silence threshold (25 dB under
the 99th-percentile intensity), separated from the previous peak by a dip of at least 2 dB, and
voiced. Nuclei are divided by the sounding time (intensity above the threshold, pauses under 0.3 s
bridged), so the rate does not fall because a clip has long silences around the speech.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
PITCH_FLOOR_HZ = 60.0
PITCH_CEILING_HZ = 600.0
TIME_STEP_S = 0.01
SILENCE_DB = 25.0
MIN_DIP_DB = 2.0
MIN_PAUSE_S = 0.3


def measure_prosody(x: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float | None]:
    """`m_f0_median_hz`, `m_f0_spread_st`, `m_voiced_share`, `m_rate_syl_per_s`, `m_syllables`,
    `m_speech_seconds` for a mono waveform; pitch values are None when nothing is voiced."""
    import parselmouth

    out: dict[str, float | None] = dict.fromkeys(
        ("m_f0_median_hz", "m_f0_spread_st", "m_voiced_share", "m_rate_syl_per_s", "m_syllables", "m_speech_seconds")
    )
    x = np.asarray(x, np.float64)
    if len(x) < int(0.1 * sr) or not np.any(x):
        return out
    snd = parselmouth.Sound(x, sr)
    pitch = snd.to_pitch(time_step=TIME_STEP_S, pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ)
    f0 = pitch.selected_array["frequency"]
    f0_times = pitch.xs()
    intensity = snd.to_intensity(minimum_pitch=PITCH_FLOOR_HZ, time_step=TIME_STEP_S)
    level = intensity.values[0]
    level_times = intensity.xs()
    threshold = max(float(np.percentile(level, 99)) - SILENCE_DB, float(np.min(level)))
    sounding = _bridge_gaps(level > threshold, int(round(MIN_PAUSE_S / TIME_STEP_S)))

    voiced_at = np.interp(level_times, f0_times, (f0 > 0).astype(float), left=0.0, right=0.0) >= 0.5 if len(f0) else np.zeros(len(level_times), bool)
    voiced = f0[f0 > 0]
    if len(voiced) >= 3:
        st = 12.0 * np.log2(voiced)
        out["m_f0_median_hz"] = round(float(np.median(voiced)), 3)
        out["m_f0_spread_st"] = round(float(np.percentile(st, 90) - np.percentile(st, 10)), 4)
    out["m_voiced_share"] = round(float(np.mean(voiced_at[sounding])), 4) if sounding.any() else 0.0

    peaks = _nuclei(level, threshold)
    nuclei = [i for i in peaks if voiced_at[i]]
    speech_s = float(sounding.sum() * TIME_STEP_S)
    out["m_syllables"] = float(len(nuclei))
    out["m_speech_seconds"] = round(speech_s, 3)
    out["m_rate_syl_per_s"] = round(len(nuclei) / speech_s, 4) if speech_s >= 0.2 else None
    return out


def _bridge_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill runs of False shorter than `max_gap` frames that lie between two True runs."""
    out = mask.copy()
    idx = np.flatnonzero(mask)
    if len(idx) < 2:
        return out
    for a, b in zip(idx[:-1], idx[1:], strict=False):
        if 1 < b - a <= max_gap:
            out[a:b] = True
    return out


def _nuclei(level: np.ndarray, threshold: float) -> list[int]:
    """Indices of intensity peaks above `threshold` with a dip of `MIN_DIP_DB` before each."""
    if len(level) < 3:
        return []
    inner = level[1:-1]
    is_peak = (inner > level[:-2]) & (inner >= level[2:]) & (inner > threshold)
    candidates = np.flatnonzero(is_peak) + 1
    kept: list[int] = []
    for i in candidates:
        if not kept:
            kept.append(int(i))
            continue
        prev = kept[-1]
        dip = float(level[prev:i + 1].min())
        if level[i] - dip >= MIN_DIP_DB and level[prev] - dip >= MIN_DIP_DB:
            kept.append(int(i))
        elif level[i] > level[prev]:
            kept[-1] = int(i)  # same syllable: keep its higher peak
    return kept
