"""The DuckDB side of a collection: tables, column types, identifier quoting.

`clips` has a fixed core (what search and the indexer rely on) and grows a typed column for every
extra manifest field or flattened attribute it is given, so that `--where "pitch_hz > 200"` filters
on a real DOUBLE, not on text inside a JSON blob.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import duckdb

SCHEMA_VERSION = 1
"""Bumped only by a change older code could misread. Adding a core column is not one: older code
treats an unknown column as metadata, and `add_missing_core_columns` gives an older collection the
new ones when it is next opened for writing (read-only readers take a missing one as null)."""

CORE_CLIP_COLUMNS: dict[str, str] = {
    "id": "BIGINT NOT NULL",
    "source_key": "VARCHAR NOT NULL",  # manifest id, else the resolved path: identity across runs
    "source_path": "VARCHAR NOT NULL",
    "segment": "INTEGER NOT NULL",  # 0.. within the source item, in time order
    "start": "DOUBLE",
    "end": "DOUBLE",
    "duration": "DOUBLE",
    "sample_rate": "INTEGER",  # of the source file; vectors are always computed at 16 kHz
    "channels": "INTEGER",
    "speaker": "VARCHAR",
    "language": "VARCHAR",
    "global_caption": "VARCHAR",
    "fine_captions": "VARCHAR[]",
    "transcript": "VARCHAR",  # what is said, from a source's transcript/text column
    "normalized_transcript": "VARCHAR",  # its normalised form where the source gives one (normalized_text)
    "content_hash": "VARCHAR",
    "file_size": "BIGINT",
    "file_mtime_ns": "BIGINT",
    "manifest_hash": "VARCHAR",  # of the item's manifest fields: edited captions re-embed unchanged audio
    "run_id": "BIGINT",
    "added_at": "TIMESTAMP",
}

#: Columns of `runs` added after its first version (an older collection gets them when next opened
#: for writing). `runtimes`: how each machine-dependent stage of the run computed its numbers, as a
#: JSON object ({"captions": "openvino bf16", "DNSMOS": ["openvino bf16"], ...}), since bf16 and fp32
#: give slightly different caption vectors and scores.
LATER_RUN_COLUMNS: dict[str, str] = {"runtimes": "VARCHAR"}

STATE_KEYS = ("generation", "next_clip_id", "next_caption_id", "next_error_id", "next_run_id")


def quote_ident(name: str) -> str:
    """Quote a column name for SQL (identifiers cannot be bound as parameters)."""
    return '"' + str(name).replace('"', '""') + '"'


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table of an empty collection (inside the caller's transaction)."""
    con.execute("CREATE TABLE state (k VARCHAR NOT NULL, v BIGINT NOT NULL)")
    for key in STATE_KEYS:
        con.execute("INSERT INTO state VALUES (?, ?)", [key, 0 if key == "generation" else 1])
    cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in CORE_CLIP_COLUMNS.items())
    con.execute(f"CREATE TABLE clips ({cols})")
    con.execute(
        "CREATE TABLE captions (id BIGINT NOT NULL, clip_id BIGINT NOT NULL, kind VARCHAR NOT NULL,"
        " text VARCHAR NOT NULL, generated BOOLEAN NOT NULL DEFAULT false)"
    )
    con.execute(
        "CREATE TABLE errors (id BIGINT NOT NULL, source_key VARCHAR, path VARCHAR, stage VARCHAR,"
        " reason VARCHAR, message VARCHAR, content_hash VARCHAR, run_id BIGINT, time TIMESTAMP)"
    )
    con.execute(
        "CREATE TABLE runs (id BIGINT NOT NULL, started TIMESTAMP, finished TIMESTAMP, source VARCHAR,"
        " model_id VARCHAR, status VARCHAR, clips_added BIGINT, clips_deleted BIGINT,"
        " files_added BIGINT, files_unchanged BIGINT, files_failed BIGINT, audio_seconds DOUBLE,"
        " wall_seconds DOUBLE, args VARCHAR, " + ", ".join(f"{quote_ident(n)} {t}" for n, t in LATER_RUN_COLUMNS.items())
        + ")"
    )


def add_missing_core_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Give `clips` and `runs` tables made by an older version the core columns they lack (all
    nullable, so existing rows read as 'not given'); returns them as "table.column". Runs in its own
    transaction."""
    missing = [(table, name, dtype)
               for table, columns in (("clips", CORE_CLIP_COLUMNS), ("runs", LATER_RUN_COLUMNS))
               if (existing := table_columns(con, table))  # a table an old collection lacks stays absent
               for name, dtype in columns.items() if name not in existing]
    if missing:
        con.begin()
        for table, name, dtype in missing:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_ident(name)} {dtype}")
        con.commit()
    return [f"{table}.{name}" for table, name, _ in missing]


def get_state(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {k: int(v) for k, v in con.execute("SELECT k, v FROM state").fetchall()}


def set_state(con: duckdb.DuckDBPyConnection, key: str, value: int) -> None:
    con.execute("UPDATE state SET v = ? WHERE k = ?", [int(value), key])


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> DuckDB type of an existing table."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {name: dtype for name, dtype in rows}


def infer_type(values: Iterable[Any]) -> str:
    """A DuckDB type for a column of Python values (the first non-null value decides, ints widen to DOUBLE)."""
    seen: set[str] = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            seen.add("BOOLEAN")
        elif isinstance(v, int):
            seen.add("BIGINT")
        elif isinstance(v, float):
            seen.add("DOUBLE")
        elif isinstance(v, (list, tuple)):
            inner = infer_type(v)
            seen.add(f"{inner}[]")
        elif isinstance(v, dict):
            seen.add("JSON")
        else:
            seen.add("VARCHAR")
    if not seen:
        return "VARCHAR"
    if seen <= {"BIGINT", "DOUBLE"}:
        return "DOUBLE" if "DOUBLE" in seen else "BIGINT"
    return seen.pop() if len(seen) == 1 else "VARCHAR"


def ensure_columns(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[Mapping[str, Any]], types: Mapping[str, str] | None
) -> None:
    """Add a typed column for every key in `rows` the table lacks (declared `types` win over inference)."""
    existing = table_columns(con, table)
    names: list[str] = []
    for row in rows:
        for key in row:
            if key not in existing and key not in names:
                names.append(key)
    for name in names:
        dtype = (types or {}).get(name) or infer_type(r.get(name) for r in rows)
        con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_ident(name)} {dtype}")
