"""Manifest rows built in Python (one dict per row) as an Arrow table `manifest.table_source` reads."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa


def table_from_records(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """One column per key any record has (absent = null). A column whose values Arrow cannot hold as
    one type (a number in one row, text in another) becomes text, nested values as JSON, so that one
    odd row does not refuse a whole corpus."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {}
    for name in names:
        values = [record.get(name) for record in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([_as_text(v) for v in values], pa.string())
    return pa.table(columns) if columns else pa.table({"path": pa.array([], pa.string())})


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
