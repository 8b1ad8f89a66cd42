"""The per-file work done in decoding worker processes: hash, decode, resample, segment.

It returns plain picklable records (never raises for bad input) so that a worker pool can stream
them back to the embedding process, and one broken file costs one `Failed` record, not the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from indexer.manifest import SourceItem
from searchengine.audio import MAX_SEGMENT_SECONDS, AudioError, file_hash, load_segments


@dataclass
class Decoded:
    """A file ready to embed: its segments (16 kHz mono) and the facts the store records about it."""

    item: SourceItem
    starts: list[float]
    ends: list[float]
    waveforms: list[np.ndarray]
    sample_rate: int
    channels: int
    content_hash: str
    file_size: int
    file_mtime_ns: int

    @property
    def seconds(self) -> float:
        return float(sum(e - s for s, e in zip(self.starts, self.ends, strict=False)))


@dataclass
class Failed:
    """A file that could not be decoded, with the stage and a short reason code."""

    item: SourceItem
    stage: str
    reason: str
    message: str
    content_hash: str | None = None


def process(item: SourceItem, max_seconds: float = MAX_SEGMENT_SECONDS) -> Decoded | Failed:
    """Hash and decode one item; every failure becomes a `Failed` record."""
    try:
        st = os.stat(item.path)
        digest = file_hash(item.path)
    except OSError as exc:
        return Failed(item, "read", "missing" if isinstance(exc, FileNotFoundError) else "unreadable", f"{item.path}: {exc.strerror or exc}")
    try:
        audio, segments = load_segments(item.path, item.start, item.end, max_seconds)
    except AudioError as exc:
        return Failed(item, "decode", exc.reason, str(exc), digest)
    except Exception as exc:  # noqa: BLE001 - an unexpected decoder failure is still one bad file
        return Failed(item, "decode", "error", f"{item.path}: {type(exc).__name__}: {exc}", digest)
    return Decoded(
        item=item,
        starts=[s.start for s in segments],
        ends=[s.end for s in segments],
        waveforms=[s.waveform for s in segments],
        sample_rate=audio.source_sample_rate,
        channels=audio.source_channels,
        content_hash=digest,
        file_size=int(st.st_size),
        file_mtime_ns=int(st.st_mtime_ns),
    )
