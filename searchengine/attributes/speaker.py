"""Speaker embeddings (Resemblyzer's GE2E voice encoder, 256-d, L2-normalised) and gender from them.

The embedding is what the collection's speaker index holds: same-voice search, speaker clustering and
speaker-level near-duplicates all compare these vectors by inner product. Gender is estimated from it
and the clip's median F0 by a logistic regression (`gender_model.json`, fitted by `python -m
training.train_gender` on real and synthetic voices the project may ship) for clips whose manifest has
no gender label. The speaker vector alone reads timbre, which a telephone band or an unusual voice
blurs; F0 alone fails for low women and high men and says nothing for whispers; together they agree
on most real voices. The estimate comes with a confidence, the probability of the answer given.
Figures (development set and held-out synthetic voices) are stored next to the weights.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
SPEAKER_DIM = 256
GENDER_MODEL = Path(__file__).with_name("gender_model.json")


@functools.lru_cache(maxsize=1)
def _encoder() -> Any:
    from resemblyzer import VoiceEncoder

    # torch's DataLoader workers already run single-threaded; setting threads here would also slow
    # the embedding model whenever attributes are measured in the main process (workers=0)
    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(x: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray | None:
    """The clip's 256-d unit speaker vector, or None when it holds too little voiced audio to embed."""
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(np.asarray(x, np.float32), source_sr=sr)  # resamples, trims silence (webrtcvad)
    if len(wav) < int(0.3 * SAMPLE_RATE):
        return None
    v = np.asarray(_encoder().embed_utterance(wav), np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else None


F0_CENTRE_HZ = 160.0
F0_SCALE_OCTAVES = 0.5
"""log2(F0 / 160 Hz) / 0.5: about -1 for a typical man (110 Hz), +0.6 for a typical woman (200 Hz)."""


@functools.lru_cache(maxsize=1)
def gender_model() -> dict[str, Any]:
    """The committed classifier: weights, bias, and how it was trained and scored."""
    return json.loads(GENDER_MODEL.read_text(encoding="utf-8"))


def gender_features(vectors: np.ndarray, f0_hz: np.ndarray | Sequence[float | None] | None = None) -> np.ndarray:
    """[N, 258]: the unit speaker vectors, centred and scaled log F0 (0 where unvoiced or unknown), and
    a flag that F0 is missing (whispers, noise), so a missing pitch is not read as a middle one."""
    v = np.atleast_2d(np.asarray(vectors, np.float64))
    f0 = np.full(len(v), np.nan) if f0_hz is None else np.array(
        [np.nan if f is None else float(f) for f in np.atleast_1d(np.asarray(f0_hz, dtype=object))], np.float64)
    missing = ~np.isfinite(f0) | (f0 <= 0)
    z = np.where(missing, 0.0, np.log2(np.where(missing, F0_CENTRE_HZ, f0) / F0_CENTRE_HZ) / F0_SCALE_OCTAVES)
    return np.hstack([v, z[:, None], missing[:, None].astype(np.float64)])


def female_probability(vectors: np.ndarray, f0_hz: Any = None, model: dict[str, Any] | None = None) -> np.ndarray:
    """P(female) for each row of unit speaker vectors [N, 256], given each clip's median F0 in Hz (None
    or NaN where it has none)."""
    m = model or gender_model()
    z = gender_features(vectors, f0_hz) @ np.asarray(m["weights"], np.float64) + float(m["bias"])
    return 1.0 / (1.0 + np.exp(-z))


def estimate_gender(vector: np.ndarray | None, f0_hz: float | None = None) -> dict[str, Any]:
    """`m_gender_est` ('female' | 'male') and `m_gender_prob`, the confidence: the probability of that
    answer (0.5-1)."""
    if vector is None:
        return {"m_gender_est": None, "m_gender_prob": None}
    p = float(female_probability(vector, [f0_hz])[0])
    return {"m_gender_est": "female" if p >= 0.5 else "male", "m_gender_prob": round(max(p, 1 - p), 4)}
