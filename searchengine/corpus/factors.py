"""Style factors: what each clip is asked to sound like, as numbers and as the words captions use.

Each factor is sampled as "pick a bin uniformly, then a value uniformly inside it", so that every bin
is equally represented (not only the extremes) and factors are independent of each other and of the
voice. The numeric value is the ground truth a measurement on the audio should find; the bin label is
derived from it by `label(...)`, the single place where the thresholds live. A factor an engine cannot
control is None, never a guess.
"""

from __future__ import annotations

import bisect
import functools
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from searchengine.corpus.voices import Voice

# Bins: (label, low, high) of the numeric value. Contiguous, so labelling any value is unambiguous.
PITCH_BINS = [  # semitones relative to the voice's default pitch
    ("very low", -7.0, -4.5),
    ("low", -4.5, -1.5),
    ("medium", -1.5, 1.5),
    ("high", 1.5, 4.5),
    ("very high", 4.5, 8.0),
]
PITCH_VARIATION_BINS = [  # F0 spread: 90th minus 10th percentile of voiced F0, in semitones
    ("monotone", 0.2, 1.2),
    ("moderate", 1.2, 3.0),
    ("expressive", 3.0, 5.5),
]
RATE_BINS = [  # speaking rate as a factor of the voice's normal rate
    ("very slow", 0.6, 0.75),
    ("slow", 0.75, 0.9),
    ("medium", 0.9, 1.12),
    ("fast", 1.12, 1.4),
    ("very fast", 1.4, 1.75),
]
LOUDNESS_BINS = [  # RMS of the speech-active part of the clip, dBFS
    ("quiet", -40.0, -31.0),
    ("normal", -31.0, -22.0),
    ("loud", -22.0, -16.0),
]
NOISE_BINS = [  # SNR in dB against the speech's active level; "clean" has no added noise
    ("very noisy", 0.0, 8.0),
    ("noisy", 8.0, 16.0),
    ("slightly noisy", 16.0, 28.0),
]
REVERB_BINS = [  # sox reverberance, %; "close" has no reverb at all
    ("close", 0.0, 0.0),
    ("slightly distant", 15.0, 40.0),
    ("distant", 40.0, 70.0),
    ("very distant", 70.0, 100.0),
]
NOISE_COLORS = ("white", "pink", "brown")
CLEAN_SHARE = 0.4  # clips without added noise (one bin among four would be 0.25; clean audio is common)
TELEPHONE_SHARE = 0.2

# espeak-ng calibration, measured with Praat on four voices x three sentences. Rows: `-p` values,
# columns: SSML prosody range %. espeak-ng's range widens upwards from its base pitch and is in Hz-like
# units, so pitch level and F0 spread depend on both settings; the generator picks the (p, range)
# pair that hits both targets and records what that pair gives.
#   _MEDIAN: median F0 in semitones against the voice's default (-p 50, range 100 %)
#   _SPREAD: F0 spread, 90th minus 10th percentile of voiced F0, semitones
_CAL_P = [0, 10, 20, 35, 50, 65, 80, 90, 99]
_CAL_R = [0, 25, 50, 75, 100, 150, 200]
_MEDIAN = [
    [-11.06, -10.08, -9.03, -8.11, -7.17, -5.42, -3.87],
    [-9.40, -8.50, -7.57, -6.70, -5.84, -4.26, -2.78],
    [-7.87, -7.06, -6.17, -5.38, -4.58, -3.14, -1.80],
    [-5.19, -4.48, -3.72, -3.05, -2.35, -1.04, 0.15],
    [-2.44, -1.83, -1.18, -0.59, 0.00, 1.15, 2.18],
    [0.49, 1.01, 1.55, 2.05, 2.57, 3.56, 4.43],
    [3.45, 3.89, 4.36, 4.77, 5.23, 6.06, 6.81],
    [5.51, 5.90, 6.32, 6.70, 7.09, 7.84, 8.52],
    [7.35, 7.71, 8.08, 8.43, 8.78, 9.47, 10.08],
]
_SPREAD = [
    [0.47, 1.46, 2.66, 3.64, 4.57, 6.14, 7.29],
    [0.43, 1.34, 2.52, 3.41, 4.31, 5.82, 6.96],
    [0.39, 1.22, 2.30, 3.16, 4.05, 5.52, 6.62],
    [0.34, 1.05, 2.00, 2.79, 3.64, 4.92, 6.00],
    [0.29, 0.89, 1.74, 2.44, 3.17, 4.42, 5.36],
    [0.25, 0.76, 1.48, 2.10, 2.72, 3.87, 4.78],
    [0.21, 0.66, 1.25, 1.82, 2.36, 3.33, 4.21],
    [0.19, 0.59, 1.12, 1.61, 2.11, 3.02, 3.82],
    [0.17, 0.52, 1.01, 1.46, 1.91, 2.75, 3.48],
]
DEFAULT_RANGE_PERCENT = 100
ESPEAK_NORMAL_WPM = 175


@dataclass(frozen=True)
class Factors:
    """One clip's requested style, numeric ground truth (None = not controlled / unknown)."""

    pitch_semitones: float | None
    pitch_spread_semitones: float | None
    rate_factor: float
    loudness_dbfs: float
    whisper: bool | None
    snr_db: float | None  # None = clean
    noise_color: str | None
    reverberance: float  # 0 = close
    telephone: bool

    def attributes(self) -> dict:
        """Every factor's numeric value and its bin, as stored in the manifest."""
        out = asdict(self)
        out.update(
            pitch_level=label(PITCH_BINS, self.pitch_semitones),
            pitch_variation=label(PITCH_VARIATION_BINS, self.pitch_spread_semitones),
            speaking_rate=label(RATE_BINS, self.rate_factor),
            loudness=label(LOUDNESS_BINS, self.loudness_dbfs),
            noise="clean" if self.snr_db is None else label(NOISE_BINS, self.snr_db),
            reverb="close" if self.reverberance <= 0 else label(REVERB_BINS[1:], self.reverberance),
            channel="telephone" if self.telephone else "studio",
        )
        return out


def label(bins: list[tuple[str, float, float]], value: float | None) -> str | None:
    """The bin a value falls in (values outside the table go to the nearest end bin)."""
    if value is None:
        return None
    uppers = [hi for _, _, hi in bins[:-1]]
    return bins[bisect.bisect_right(uppers, value)][0]


def _uniform_in_bin(rng: random.Random, bins: list[tuple[str, float, float]]) -> float:
    _, lo, hi = rng.choice(bins)
    return round(rng.uniform(lo, hi), 2)


def sample_factors(rng: random.Random, voice: Voice) -> Factors:
    """Draw one clip's factors, independently of each other; what the voice cannot do is None."""
    pitch = _uniform_in_bin(rng, PITCH_BINS)
    spread = _uniform_in_bin(rng, PITCH_VARIATION_BINS)
    rate = _uniform_in_bin(rng, RATE_BINS)
    loudness = _uniform_in_bin(rng, LOUDNESS_BINS)
    snr = None if rng.random() < CLEAN_SHARE else _uniform_in_bin(rng, NOISE_BINS)
    color = rng.choice(NOISE_COLORS)
    reverb_bin = rng.choice(REVERB_BINS)
    reverberance = round(rng.uniform(reverb_bin[1], reverb_bin[2]), 1)
    telephone = rng.random() < TELEPHONE_SHARE
    if voice.whisper:  # a whisper has no F0: its level and spread are undefined
        pitch, spread = None, None
    elif voice.engine == "espeak-ng":  # record what the calibrated settings give
        _, _, pitch, achieved = espeak_settings(pitch, spread if voice.controls_pitch_range else None)
        spread = achieved if voice.controls_pitch_range else None
    else:
        spread = None
    return Factors(
        pitch_semitones=pitch,
        pitch_spread_semitones=spread,
        rate_factor=rate,
        loudness_dbfs=loudness,
        whisper=voice.whisper,
        snr_db=snr,
        noise_color=None if snr is None else color,
        reverberance=reverberance,
        telephone=telephone,
    )


def facts(voice: Voice, factors: Factors) -> dict:
    """The `facts` dict captions are written from: speaker facts plus binned factors."""
    attrs = factors.attributes()
    return {
        "gender": voice.gender,
        "age": voice.age,
        "accent": voice.accent,
        "timbre": list(voice.timbre),
        "pitch_level": attrs["pitch_level"],
        "pitch_variation": attrs["pitch_variation"],
        "speaking_rate": attrs["speaking_rate"],
        "loudness": attrs["loudness"],
        "whisper": factors.whisper,
        "noise": attrs["noise"],
        "noise_color": factors.noise_color,
        "reverb": attrs["reverb"],
        "channel": attrs["channel"],
    }


#: Facts a manifest record stores among its attributes (the rest sit at the top level of the record).
_ATTRIBUTE_FACTS = ("age", "timbre", "pitch_level", "pitch_variation", "speaking_rate", "loudness", "whisper",
                    "noise", "noise_color", "reverb", "channel")


def facts_from_record(record: Mapping[str, Any]) -> dict:
    """The `facts` dict of a manifest record, as `facts` gave it when the corpus was written.

    Lets a trainer word a clip anew (paraphrases from another phrasing pool) from the manifest alone,
    without the voice catalogue or the audio. Facts the record lacks are None, so captions leave them
    out.
    """
    attributes = record.get("attributes") or {}
    out: dict[str, Any] = {key: record.get(key) for key in ("gender", "accent")}
    out.update({key: attributes.get(key) for key in _ATTRIBUTE_FACTS})
    out["timbre"] = list(out["timbre"] or [])
    return out


# --- espeak-ng calibration -------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _calibration_grid() -> tuple[np.ndarray, np.ndarray]:
    """Median shift and spread for every integer -p (0..99) x range % (0..200), bilinearly
    interpolated from the measured tables."""
    p = np.arange(100, dtype=float)
    r = np.arange(201, dtype=float)

    def grid(table: list[list[float]]) -> np.ndarray:
        t = np.asarray(table)
        by_r = np.stack([np.interp(r, _CAL_R, row) for row in t])  # rows: _CAL_P
        return np.stack([np.interp(p, _CAL_P, by_r[:, j]) for j in range(len(r))], axis=1)

    return grid(_MEDIAN), grid(_SPREAD)


def espeak_settings(semitones: float, spread: float | None) -> tuple[int, int, float, float]:
    """(-p, range %, achieved semitones, achieved spread) closest to the targets.

    Without a spread target the range stays at espeak-ng's default. Pitch errors weigh twice as
    much as spread errors: pitch level is the factor listeners notice first.
    """
    median, spreads = _calibration_grid()
    if spread is None:
        p = int(np.argmin(np.abs(median[:, DEFAULT_RANGE_PERCENT] - semitones)))
        r = DEFAULT_RANGE_PERCENT
    else:
        cost = 4.0 * (median - semitones) ** 2 + (spreads - spread) ** 2
        p, r = (int(i) for i in np.unravel_index(np.argmin(cost), cost.shape))
    return p, r, round(float(median[p, r]), 2), round(float(spreads[p, r]), 2)


def espeak_rate_arg(rate_factor: float) -> int:
    """espeak-ng `-s` (words per minute); its durations scale with 1/wpm to within a few percent."""
    return int(round(ESPEAK_NORMAL_WPM * rate_factor))
