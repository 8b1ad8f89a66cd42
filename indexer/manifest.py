"""What to index: a manifest (.jsonl / .csv / .parquet, read by DuckDB) or a folder of audio files.

Every source becomes a list of `SourceItem`s with a stable `key` (the manifest `id`, else the
resolved path plus the time range), which is what makes re-runs incremental. Columns the store does
not know are kept, typed as DuckDB inferred them, and nested `attributes` objects are flattened into
one column per attribute so they can be filtered on.

A manifest that cannot be read correctly is refused as a whole, with one line naming the column,
because indexing half of it silently would be worse than not starting.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from searchengine.store.schema import CORE_CLIP_COLUMNS

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf"}
MANIFEST_EXTENSIONS = {".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet"}

# Manifest columns with a meaning of their own; the rest is metadata.
_RESERVED = {"id", "path", "start", "end", "speaker", "language", "global_caption", "fine_captions", "attributes"}
# Columns the store computes from the audio itself; a manifest's own values are kept under `manifest_<name>`.
_COMPUTED = set(CORE_CLIP_COLUMNS) - {"speaker", "language", "global_caption", "fine_captions", "start", "end"}


class ManifestError(ValueError):
    """The source cannot be indexed at all (missing or mistyped column, unreadable file)."""


@dataclass(frozen=True)
class SourceItem:
    """One thing to index: a file, or a [start, end) range of one, with its manifest metadata."""

    key: str
    path: str
    start: float | None = None
    end: float | None = None
    speaker: str | None = None
    language: str | None = None
    global_caption: str | None = None
    fine_captions: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Source:
    """Everything read from a source: the items, the DuckDB types of metadata columns, duplicates."""

    origin: str
    items: list[SourceItem]
    column_types: dict[str, str]
    duplicates: list[SourceItem] = field(default_factory=list)


def read_source(source: str | Path) -> Source:
    """Items from a manifest file or an audio folder (the kind is decided by what `source` is)."""
    p = Path(source)
    if p.is_dir():
        return read_folder(p)
    if not p.is_file():
        raise ManifestError(f"{p}: no such file or directory")
    if p.suffix.lower() in MANIFEST_EXTENSIONS:
        return read_manifest(p)
    if p.suffix.lower() in AUDIO_EXTENSIONS:
        item = SourceItem(key=str(p.resolve()), path=str(p.resolve()))
        return Source(str(p), [item], {})
    raise ManifestError(f"{p}: not a manifest ({', '.join(sorted(MANIFEST_EXTENSIONS))}) or an audio file")


def read_folder(folder: Path) -> Source:
    """Every audio file under `folder` (recursively, sorted so runs are reproducible)."""
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
    items = [SourceItem(key=str(f.resolve()), path=str(f.resolve())) for f in files]
    return Source(str(folder), items, {})


def _read_table(path: Path) -> tuple[pa.Table, dict[str, str]]:
    suffix = path.suffix.lower()
    con = duckdb.connect()
    try:
        if suffix in {".jsonl", ".ndjson"}:
            query = "SELECT * FROM read_json_auto($p, format = 'newline_delimited')"
        elif suffix == ".json":
            query = "SELECT * FROM read_json_auto($p)"
        elif suffix in {".csv", ".tsv"}:
            query = "SELECT * FROM read_csv_auto($p, header = true)"
        else:
            query = "SELECT * FROM read_parquet($p)"
        table = con.sql(query, params={"p": str(path)}).to_arrow_table()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ManifestError(f"{path}: cannot read manifest: {first}") from exc
    table = _flatten_attributes(table)
    con.register("manifest", table)
    types = {name: dtype for name, dtype, *_ in con.execute("DESCRIBE manifest").fetchall()}
    con.close()
    return table, types


def _flatten_attributes(table: pa.Table) -> pa.Table:
    """Turn struct columns (e.g. `attributes`) into one column per field, named after the field.

    A field whose name is already taken by a top-level column keeps a `<struct>_` prefix.
    """
    while any(pa.types.is_struct(f.type) for f in table.schema):
        names = set(table.column_names)
        columns, fields = [], []
        for f, col in zip(table.schema, table.columns, strict=False):
            if not pa.types.is_struct(f.type):
                columns.append(col)
                fields.append(f.name)
                continue
            for i, sub in enumerate(f.type):
                child = pa.chunked_array([chunk.field(i) for chunk in col.chunks], type=sub.type)
                name = sub.name if sub.name not in names and sub.name not in _RESERVED else f"{f.name}_{sub.name}"
                columns.append(child)
                fields.append(name)
        table = pa.table(columns, names=fields)
    return table


def _check_types(path: Path, types: Mapping[str, str]) -> None:
    if "path" not in types:
        raise ManifestError(f"{path}: manifest has no 'path' column (columns: {', '.join(types) or 'none'})")
    if types["path"] != "VARCHAR":
        raise ManifestError(f"{path}: column 'path' must hold text (file paths), found {types['path']}")
    numeric = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "DECIMAL", "HUGEINT", "UBIGINT")
    for name in ("start", "end"):
        if name in types and not types[name].startswith(numeric):
            raise ManifestError(f"{path}: column '{name}' must be a number of seconds, found {types[name]}")
    for name in ("speaker", "language", "global_caption"):
        if name in types and types[name].endswith("[]"):
            raise ManifestError(f"{path}: column '{name}' must be text, found {types[name]}")
    if "fine_captions" in types and types["fine_captions"] not in ("VARCHAR[]", "VARCHAR", '"NULL"', "NULL"):
        raise ManifestError(f"{path}: column 'fine_captions' must be a list of texts, found {types['fine_captions']}")


def _fine_list(value: Any, path: Path, row: int) -> tuple[str, ...]:
    """fine_captions as a tuple; CSV cells may hold a JSON list or '|'-separated texts."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}: column 'fine_captions' row {row + 1} is not a JSON list") from exc
        else:
            value = [t for t in (s.strip() for s in text.split("|")) if t]
    return tuple(str(v) for v in value if v is not None and str(v).strip())


def _num(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def read_manifest(path: Path) -> Source:
    """Items of a manifest; `path` entries resolve relative to the manifest's directory."""
    table, types = _read_table(path)
    _check_types(path, types)
    base = path.resolve().parent
    meta_names = [n for n in table.column_names if n not in _RESERVED]
    renamed = {n: (f"manifest_{n}" if n in _COMPUTED else n) for n in meta_names}
    column_types = {renamed[n]: types[n] for n in meta_names if types[n] not in ('"NULL"', "NULL")}
    items: list[SourceItem] = []
    duplicates: list[SourceItem] = []
    seen: set[str] = set()
    for row_no, row in enumerate(table.to_pylist()):
        raw = row.get("path")
        if not raw:
            raise ManifestError(f"{path}: column 'path' is empty in row {row_no + 1}")
        resolved = Path(raw) if Path(raw).is_absolute() else base / raw
        start, end = _num(row.get("start")), _num(row.get("end"))
        if row.get("id") is not None:
            key = str(row["id"])
        else:
            key = str(resolved) + ("" if start is None and end is None else f"#{start or 0:g}-{end if end is not None else ''}")
        item = SourceItem(
            key=key,
            path=str(resolved),
            start=start,
            end=end,
            speaker=None if row.get("speaker") is None else str(row["speaker"]),
            language=None if row.get("language") is None else str(row["language"]),
            global_caption=None if not row.get("global_caption") else str(row["global_caption"]),
            fine_captions=_fine_list(row.get("fine_captions"), path, row_no),
            metadata={renamed[n]: row[n] for n in meta_names},
        )
        (duplicates if key in seen else items).append(item)
        seen.add(key)
    return Source(str(path), items, column_types, duplicates)
