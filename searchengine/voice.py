""""Sounds like this" = style + timbre: an example's speech vector and its speaker vector, fused.

The CLSP speech vector holds how a clip is spoken and recorded (pitch level, pace, loudness, noise,
room, channel, whisper): clips alike in *style*. It says little about *who* speaks: on the real-speech
development set the speech index alone finds the query's own speaker in about half of the top 5,
while the speaker index (Resemblyzer d-vectors, stored at indexing) finds them in nine of ten. An
example query therefore searches both and ranks by

    (1 - w) * cos(speech) + w * cos(speaker)        w = voice_weight in [0, 1]

`w = 0` is the speech index alone (style), `w = 1` the speaker index alone (voice); in between every
candidate either index found is scored exactly in both (`fusion.weighted_sum`, the arithmetic caption
fusion uses). A clip without a speaker vector (too little voice to embed) is judged by its speech
cosine alone. Raw cosines are summed rather than standardised: on the development set they gave the
same same-speaker precision as per-query z-scores at a matching weight while keeping more of the
style ranking on synthetic voices (benchmarks/RESULTS.md, "Real voices").

The query's speaker vector is computed as indexing computes a clip's: Resemblyzer on each <= 30 s
segment (`searchengine.attributes.speaker.speaker_embedding`), then the mean of the segments'
vectors, re-normalised; for clips of the collection, the mean of their stored vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from searchengine.fusion import weighted_sum
from searchengine.store.faiss_index import search_ids

DEFAULT_VOICE_WEIGHT = 0.7
"""The speaker index's share for example queries, chosen on the real-speech development set: the
weight with the highest same-speaker P@5 among those that keep the style ranking of synthetic
held-out voices within 0.01 nDCG@10 of the speech index alone (benchmarks/bench_real_voices.py)."""


def voice_weights(weight: float) -> dict[str, float]:
    """The weights `fusion.weighted_sum` takes for a voice weight."""
    return {"speech": 1.0 - float(weight), "speaker": float(weight)}


def check_voice_weight(weight: float | None) -> None:
    """A voice weight must be a number in [0, 1] (None: the default)."""
    if weight is None:
        return
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"voice_weight must be a number between 0 (style) and 1 (voice), not {weight!r}")


def speaker_query(waveform: np.ndarray, sr: int = 16000) -> np.ndarray | None:
    """A recording's speaker vector as indexing computes one per segment, the segments averaged;
    None when no segment holds enough voice."""
    from searchengine.attributes.speaker import speaker_embedding
    from searchengine.audio import segment

    vectors = [v for s in segment(np.asarray(waveform, np.float32), sr)
               if (v := speaker_embedding(s.waveform, sr)) is not None]
    return _unit(np.mean(vectors, axis=0)) if vectors else None


def stored_speaker_query(collection: Any, ids: Sequence[int], speaker_ids: np.ndarray) -> np.ndarray | None:
    """The mean stored speaker vector of clips (those that have one), re-normalised; None if none has."""
    have = [int(i) for i in ids if _member(int(i), speaker_ids)]
    return _unit(collection.vectors("speaker", have).mean(axis=0)) if have else None


def voice_ranking(
    collection: Any,
    speech_q: np.ndarray,
    speaker_q: np.ndarray,
    weight: float,
    depth: int,
    allowed: np.ndarray | None,
    excluded: set[int],
    strategy: str,
    speaker_ids: np.ndarray,
) -> tuple[dict[int, float], dict[str, dict[int, tuple[float, None]]], str]:
    """Fused scores of the best `depth` candidates of each index (the speech index is not searched at
    w = 1), the completed per-index lists, and how a filter reached FAISS."""
    if allowed is not None and excluded:
        allowed = allowed[~np.isin(allowed, np.fromiter(excluded, np.int64))]
    lists: dict[str, dict[int, tuple[float, None]]] = {}
    used = "none"
    if weight < 1.0:
        scores, ids, used = search_ids(collection.index("speech"), speech_q, depth, allowed, excluded, strategy)
        lists["speech"] = {int(i): (float(s), None) for s, i in zip(scores, ids, strict=False)}
    scores, ids, used_speaker = search_ids(collection.index("speaker"), speaker_q, depth, allowed, excluded, strategy)
    lists["speaker"] = {int(i): (float(s), None) for s, i in zip(scores, ids, strict=False)}
    used = used_speaker if used == "none" else used
    if "speech" in lists:  # every candidate scored exactly in both indexes
        union = sorted(set(lists["speech"]) | set(lists["speaker"]))
        need_speech = [c for c in union if c not in lists["speech"]]
        if need_speech:
            for cid, s in zip(need_speech, collection.vectors("speech", need_speech) @ speech_q, strict=True):
                lists["speech"][cid] = (float(s), None)
        need_speaker = [c for c in union if c not in lists["speaker"] and _member(c, speaker_ids)]
        if need_speaker:
            for cid, s in zip(need_speaker, collection.vectors("speaker", need_speaker) @ speaker_q, strict=True):
                lists["speaker"][cid] = (float(s), None)
    return weighted_sum(lists, voice_weights(weight)), lists, used


def _member(cid: int, sorted_ids: np.ndarray) -> bool:
    at = int(np.searchsorted(sorted_ids, cid))
    return at < len(sorted_ids) and int(sorted_ids[at]) == cid


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


__all__ = ["DEFAULT_VOICE_WEIGHT", "check_voice_weight", "speaker_query", "stored_speaker_query", "voice_ranking",
           "voice_weights"]
