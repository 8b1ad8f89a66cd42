"""The per-file work done in decoding worker processes: hash, decode, resample, segment, measure.

Measuring attributes (searchengine.attributes) happens here, per segment, so that it runs in the
worker processes alongside decoding and overlaps with embedding in the main process.

It returns plain picklable records (never raises for bad input) so that a worker pool can stream
them back to the embedding process, and one broken file costs one `Failed` record, not the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from searchengine.audio import MAX_SEGMENT_SECONDS, AudioError, file_hash, load_segments
from searchengine.manifest import SourceItem


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
    attributes: list[dict[str, Any]] | None = None  # one dict of m_* columns per segment, when measured
    speaker_vectors: list[np.ndarray | None] | None = None  # one per segment; None where too little voice
    #: Worker seconds spent on this file by stage ("decode", then each attribute family measured):
    #: summed over a run, they say whether decoding or a measurement set its pace.
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: How stages ran, where that can differ between machines ({"DNSMOS": "openvino bf16"}).
    stage_runtimes: dict[str, str] = field(default_factory=dict)

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


def measure_segments(
    waveforms: list[np.ndarray], timings: dict[str, float] | None = None
) -> tuple[list[dict[str, Any]], list[np.ndarray | None]]:
    """Attributes and speaker vectors of each segment (each family's seconds added to `timings`). A
    measurement that breaks on odd audio leaves that segment's attributes empty rather than failing
    a file that embeds fine."""
    from searchengine.attributes import empty_row, measure_clip

    rows: list[dict[str, Any]] = []
    vectors: list[np.ndarray | None] = []
    for w in waveforms:
        try:
            m = measure_clip(w, timings=timings)
            rows.append(dict(m))
            vectors.append(m.speaker_vector)
        except Exception:  # noqa: BLE001 - see the docstring
            rows.append(empty_row())
            vectors.append(None)
    return rows, vectors


def measurement_runtimes() -> dict[str, str]:
    """How the networks among the measurements run here: {"DNSMOS": "openvino bf16", "speaker":
    "openvino bf16"} (or "onnxruntime float32", "torch float32"); a network that cannot run is left out."""
    from searchengine.attributes import quality, speaker

    runtimes = {}
    try:
        runtimes["DNSMOS"] = quality.runtime()
    except quality.QualityUnavailable:
        pass
    try:
        runtimes["speaker"] = speaker.runtime()
    except Exception:  # noqa: BLE001 - a speaker encoder that cannot run leaves its column empty, as measuring does
        pass
    return runtimes


def process(item: SourceItem, max_seconds: float = MAX_SEGMENT_SECONDS, attributes: bool = False) -> Decoded | Failed:
    """Hash and decode one item (and measure its attributes when asked); every failure becomes a `Failed` record."""
    started = time.perf_counter()
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
    waves = [s.waveform for s in segments]
    stage_seconds = {"decode": time.perf_counter() - started}
    rows, vectors = measure_segments(waves, stage_seconds) if attributes else (None, None)
    runtimes = measurement_runtimes() if attributes else {}
    return Decoded(
        item=item,
        starts=[s.start for s in segments],
        ends=[s.end for s in segments],
        waveforms=waves,
        sample_rate=audio.source_sample_rate,
        channels=audio.source_channels,
        content_hash=digest,
        file_size=int(st.st_size),
        file_mtime_ns=int(st.st_mtime_ns),
        attributes=rows,
        speaker_vectors=vectors,
        stage_seconds=stage_seconds,
        stage_runtimes=runtimes,
    )
