"""Manifest rows as JSON lines or CSV: the formats the indexer reads back."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from searchengine.export.rows import FIRST_COLUMNS


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, default=str) + "\n"


def csv_lines(rows: list[dict[str, Any]]) -> Iterator[str]:
    """CSV with a header; lists are written as JSON text so they survive a round trip."""
    columns = list(FIRST_COLUMNS) + sorted({k for r in rows for k in r} - set(FIRST_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
        yield buf.getvalue()
