"""A clip's own audio, cut to its segment, mixed to mono, resampled, encoded: what datasets that
carry audio (Hugging Face, LJSpeech) hold, rather than a pointer into a longer file."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from searchengine.export.errors import ExportError

PCM = "PCM_16"
"""16-bit samples: what LJSpeech and most training sets use; more would only grow the files."""


def clip_waveform(row: dict[str, Any], sample_rate: int | None) -> tuple[np.ndarray, int]:
    """The clip's [start, end) of its file, mono, at `sample_rate` (None: the file's own rate)."""
    from searchengine.audio import AudioError, read_frames, resample, to_mono

    try:
        frames, sr, _ = read_frames(row["path"], row.get("start"), row.get("end"))
    except (AudioError, OSError) as exc:
        raise ExportError(f"clip {row.get('clip_id')}: cannot read its audio ({exc}); has the file moved since "
                          "indexing?") from exc
    mono = to_mono(frames, channel_axis=1)
    rate = int(sample_rate or sr)
    return (resample(mono, sr, rate) if rate != sr else mono), rate


def encode(waveform: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """`waveform` as a WAV or FLAC file's bytes (16-bit; samples beyond full scale are clipped)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(waveform, -1.0, 1.0), sample_rate, format=fmt, subtype=PCM)
    return buf.getvalue()
