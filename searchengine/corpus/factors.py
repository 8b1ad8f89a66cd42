"""Style factors: what each clip is asked to sound like, as numbers and as the words captions use.

Each factor is sampled as "pick a bin uniformly, then a value uniformly inside it", so that every bin
is equally represented (not only the extremes) and factors are independent of each other and of the
voice. The numeric value is the ground truth a measurement on the audio should find; the bin label is
derived from it by `label(...)`, the single place where the thresholds live. A factor an engine cannot
control is None, never a guess.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import asdict, dataclass

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

# espeak-ng `-p` (0..99) -> F0 shift in semitones against -p 50, measured with Praat on three voices.
ESPEAK_PITCH_TABLE = [(0, -7.2), (10, -5.9), (25, -3.8), (40, -1.65), (50, 0.0), (60, 1.7), (75, 4.36),
                      (90, 7.17), (99, 8.9)]
# F0 spread (semitones, p90-p10) measured for espeak-ng -p (rows) x SSML prosody range % (columns).
# espeak-ng's range is in Hz-like units, so the same % gives a smaller spread at a higher pitch; this
# table lets pitch level and pitch variation be set independently.
_SPREAD_P = [0, 20, 35, 50, 65, 80, 99]
_SPREAD_R = [0, 25, 50, 75, 100, 150, 200]
_SPREAD = [
    [0.51, 1.66, 2.97, 4.03, 5.03, 6.66, 8.00],
    [0.43, 1.39, 2.60, 3.59, 4.54, 6.13, 7.27],
    [0.37, 1.22, 2.26, 3.14, 4.04, 5.49, 6.76],
    [0.32, 1.04, 1.96, 2.77, 3.62, 4.92, 6.03],
    [0.27, 0.88, 1.69, 2.40, 3.10, 4.37, 5.39],
    [0.23, 0.78, 1.47, 2.10, 2.69, 3.76, 4.76],
    [0.18, 0.61, 1.17, 1.67, 2.18, 3.15, 3.98],
]
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
    elif voice.controls_pitch_range:
        pitch = clamp_pitch_for_espeak(pitch)
        spread = round(achievable_spread(pitch, spread), 2)
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


# --- espeak-ng calibration -------------------------------------------------------------------------


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x) - 1
    t = (x - xs[i]) / (xs[i + 1] - xs[i])
    return ys[i] + t * (ys[i + 1] - ys[i])


def clamp_pitch_for_espeak(semitones: float) -> float:
    lo, hi = ESPEAK_PITCH_TABLE[0][1], ESPEAK_PITCH_TABLE[-1][1]
    return round(min(max(semitones, lo), hi), 2)


def espeak_pitch_arg(semitones: float) -> int:
    """espeak-ng `-p` value giving an F0 shift of `semitones` against the default (-p 50)."""
    ps, sts = zip(*ESPEAK_PITCH_TABLE, strict=True)
    return int(round(_interp(semitones, list(sts), [float(p) for p in ps])))


def _spread_row(p: float) -> list[float]:
    return [_interp(p, [float(x) for x in _SPREAD_P], [row[j] for row in _SPREAD]) for j in range(len(_SPREAD_R))]


def achievable_spread(semitones: float, target: float) -> float:
    """The target F0 spread clipped to what espeak-ng can produce at this pitch."""
    row = _spread_row(espeak_pitch_arg(semitones))
    return min(max(target, row[0]), row[-1])


def espeak_range_percent(semitones: float, spread: float) -> int:
    """SSML prosody range (%) that gives an F0 spread of `spread` semitones at this pitch."""
    row = _spread_row(espeak_pitch_arg(semitones))
    return int(round(_interp(spread, row, [float(r) for r in _SPREAD_R])))


def espeak_rate_arg(rate_factor: float) -> int:
    """espeak-ng `-s` (words per minute); its durations scale with 1/wpm to within a few percent."""
    return int(round(ESPEAK_NORMAL_WPM * rate_factor))
