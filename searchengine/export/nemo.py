"""NeMo manifests: one JSON object a line with `audio_filepath`, `duration`, `offset` and `text`.

That is what NeMo's speech and TTS datasets read (`offset` and `duration` in seconds select the
clip's segment of the file, so nothing is cut or copied); `normalized_text` is added when the source
gave one. A clip without a transcript gets `"text": ""`: NeMo requires the key."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def nemo_record(row: dict[str, Any]) -> dict[str, Any]:
    record = {
        "audio_filepath": row["path"],
        "duration": row["duration"],
        "offset": row.get("start") or 0.0,
        "text": row.get("transcript") or "",
    }
    if row.get("normalized_transcript"):
        record["normalized_text"] = row["normalized_transcript"]
    return record


def nemo_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(nemo_record(row), ensure_ascii=False) + "\n"
