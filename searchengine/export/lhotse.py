"""lhotse cuts: one `MonoCut` a line, its recording inline, one supervision spanning it.

Written as lhotse serialises a CutSet (`CutSet.to_file`, `.jsonl` or `.jsonl.gz`), so `CutSet.from_file`
and lhotse's data loaders read it without this package. A cut is the clip's span of its source file
(`start`, `duration`), nothing is cut or copied. The recording needs the whole file's sample count,
read from its header once per file. The supervision carries the transcript, speaker and language;
the cut's `custom` carries the clip id, score, rank and captions. A file with several channels gets
channel 0 in its cut (lhotse's usual choice for a mono cut; the search heard the channels mixed)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from searchengine.export.errors import ExportError


def recording_id(path: str) -> str:
    """A readable id unique to a file: its stem and a digest of its full path."""
    return f"{Path(path).stem}-{hashlib.blake2b(path.encode(), digest_size=4).hexdigest()}"


def file_facts(path: str, sample_rate: int | None, channels: int | None) -> tuple[int, int, int]:
    """(sample rate, sample count, channels) of a whole file, from its header."""
    import soundfile as sf

    try:
        info = sf.info(path)
        return int(info.samplerate), int(info.frames), int(info.channels)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    from searchengine.audio import AudioError, audio_seconds, read_frames

    try:
        seconds = audio_seconds(path)
        if not sample_rate or not channels:
            _, sample_rate, channels = read_frames(path, 0.0, 0.1)
    except (AudioError, OSError) as exc:
        raise ExportError(f"cannot read {path} to describe it as a lhotse recording ({exc}); has it moved since indexing?") from exc
    return int(sample_rate), int(round(seconds * sample_rate)), int(channels)


def cut_record(row: dict[str, Any], facts: tuple[int, int, int]) -> dict[str, Any]:
    sr, frames, channels = facts
    rec_id = recording_id(row["path"])
    start = float(row.get("start") or 0.0)
    duration = float(row["duration"])
    supervision: dict[str, Any] = {"id": str(row["id"]), "recording_id": rec_id, "start": 0.0, "duration": duration,
                                   "channel": 0}
    for key, field in (("text", "transcript"), ("speaker", "speaker"), ("language", "language")):
        if row.get(field) is not None:
            supervision[key] = str(row[field])
    custom = {k: row[k] for k in ("clip_id", "score", "rank", "global_caption", "fine_captions",
                                  "normalized_transcript") if row.get(k) not in (None, [])}
    return {
        "id": str(row["id"]),
        "start": start,
        "duration": duration,
        "channel": 0,
        "supervisions": [supervision],
        "recording": {
            "id": rec_id,
            "sources": [{"type": "file", "channels": list(range(channels)), "source": row["path"]}],
            "sampling_rate": sr,
            "num_samples": frames,
            "duration": frames / sr,
            "channel_ids": list(range(channels)),
        },
        "custom": custom,
        "type": "MonoCut",
    }


def lhotse_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    facts: dict[str, tuple[int, int, int]] = {}
    for row in rows:
        path = row["path"]
        if path not in facts:
            facts[path] = file_facts(path, row.get("sample_rate"), row.get("channels"))
        yield json.dumps(cut_record(row, facts[path]), ensure_ascii=False, default=str) + "\n"
