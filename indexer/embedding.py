"""Embedding decoded files: speech vectors per segment, text vectors per caption, as one `Chunk`.

This is the step both backends share: the local pipeline calls `embed` in the indexing process,
the Ray backend in its actors. It lives apart from both so that imports point one way
(pipeline -> ray_backend -> embedding, pipeline -> embedding) and neither backend imports the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.decode import Decoded, Failed
from searchengine.audio import SAMPLE_RATE
from searchengine.model.encoder import DEFAULT_PREFETCH, SpeechTimes


@dataclass
class Chunk:
    """Embedded files, ready for one `Transaction.add`."""

    decoded: list[Decoded]
    failed: list[Failed]
    speech: np.ndarray  # one row per segment, in decoded order
    captions: list[tuple[int, str, str]]  # (decoded index, kind, text), one per row of caption_vectors
    caption_vectors: np.ndarray
    segment_files: dict[str, str] = field(default_factory=dict)
    """Set by a worker that wrote its vectors as segment files (index kind -> path) instead of
    returning them: `speech` and `caption_vectors` are then empty, and the rows take `clip_ids` and
    `caption_ids`, the ids inside those files."""
    clip_ids: np.ndarray | None = None  # one per segment, in decoded order
    caption_ids: np.ndarray | None = None  # one per caption
    caption_seconds: float = 0.0  # wall time spent embedding the captions


def speaker_rows(decoded: list[Decoded]) -> tuple[list[int], list[np.ndarray]]:
    """(row of each segment that has a speaker vector, the vectors), rows numbered over all segments
    (one `clips` row per segment, in decoded order): what `Transaction.add` takes as speaker rows."""
    rows: list[int] = []
    vectors: list[np.ndarray] = []
    first = 0
    for d in decoded:
        for n, v in enumerate(d.speaker_vectors or []):
            if v is not None:
                rows.append(first + n)
                vectors.append(v)
        first += len(d.starts)
    return rows, vectors


def caption_texts(decoded: list[Decoded]) -> list[tuple[int, str, str]]:
    """(decoded index, kind, text) for every caption, attached to the item's first segment."""
    out: list[tuple[int, str, str]] = []
    for i, d in enumerate(decoded):
        if d.item.global_caption:
            out.append((i, "global", d.item.global_caption))
        out.extend((i, "fine", t) for t in d.item.fine_captions)
    return out


def embed(
    encoder: Any,
    decoded: list[Decoded],
    failed: list[Failed],
    batch_seconds: float,
    times: SpeechTimes | None = None,
    prefetch: int = DEFAULT_PREFETCH,
) -> Chunk:
    """Speech vectors for every segment and text vectors for every caption of `decoded`.

    `prefetch` speech batches are featurized ahead in a thread (see `Encoder.encode_speech`)."""
    waves = [w for d in decoded for w in d.waveforms]
    if waves:
        speech = encoder.encode_speech(waves, SAMPLE_RATE, max_batch_seconds=batch_seconds, prefetch=prefetch,
                                       times=times)
    else:
        speech = np.zeros((0, encoder.dim), np.float32)
    caps = caption_texts(decoded)
    vectors, caption_seconds = np.zeros((0, encoder.dim), np.float32), 0.0
    if caps:
        started = time.perf_counter()
        vectors = encoder.encode_text([t for _, _, t in caps])
        caption_seconds = time.perf_counter() - started
    return Chunk(decoded, failed, np.asarray(speech, np.float32), caps, np.asarray(vectors, np.float32),
                 caption_seconds=caption_seconds)
