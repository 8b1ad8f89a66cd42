"""Which segment files make up each index kind, and which ids they hold that are deleted: two DuckDB
tables written in the same transaction as the rows they index.

DuckDB stays the arbiter of a commit (see collection.py): the rows, the segment list and the
tombstones of generation N commit together or not at all, so a reader that copies the database (a
snapshot) has one generation's rows and exactly the segment files that hold their vectors.
collection.json mirrors the list for people and tools ("segments" per kind), rewritten after the
commit.

    segments(kind, file, generation, ntotal, factory)  one row per live segment file
    tombstones(kind, id)                               ids still in a segment file but deleted

A collection written before segments has neither table: its `<kind>.faiss` files are one segment
each (`legacy_files`), registered under those names by its next commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import numpy as np

SEGMENT_FILE = re.compile(r"^(speech|global|fine|speaker)\.g(\d+)-(\d+)\.faiss$")
"""A segment file: `<kind>.g<generation>-<j>.faiss`, j numbering the segments one commit adds."""


def segment_file(kind: str, generation: int, j: int = 0) -> str:
    """The file name of the `j`-th segment of `kind` written by `generation`."""
    return f"{kind}.g{int(generation)}-{int(j)}.faiss"


def pending_name(file: str) -> str:
    """Where a segment file is written before the commit that names it is durable."""
    return file + ".pending"


@dataclass(frozen=True)
class SegmentRow:
    """A row of `segments`."""

    kind: str
    file: str
    generation: int
    ntotal: int
    factory: str


def has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the collection already keeps segments (written by this version)."""
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('segments', 'tombstones')"
        " AND table_catalog = current_database()"
    ).fetchone()
    return int(rows[0]) == 2


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Add both tables (inside the caller's transaction)."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS segments (kind VARCHAR NOT NULL, file VARCHAR NOT NULL,"
        " generation BIGINT NOT NULL, ntotal BIGINT NOT NULL, factory VARCHAR NOT NULL)"
    )
    con.execute("CREATE TABLE IF NOT EXISTS tombstones (kind VARCHAR NOT NULL, id BIGINT NOT NULL)")


def read(con: duckdb.DuckDBPyConnection) -> list[SegmentRow]:
    """Every live segment, oldest first (the order their ids were given out)."""
    rows = con.execute("SELECT kind, file, generation, ntotal, factory FROM segments ORDER BY generation, file").fetchall()
    return [SegmentRow(str(k), str(f), int(g), int(n), str(t)) for k, f, g, n, t in rows]


def tombstones(con: duckdb.DuckDBPyConnection, kind: str) -> np.ndarray:
    """Sorted tombstoned ids of `kind`."""
    got = con.execute("SELECT id FROM tombstones WHERE kind = ? ORDER BY id", [kind]).fetchnumpy()["id"]
    return np.asarray(got, np.int64)


def add(con: duckdb.DuckDBPyConnection, row: SegmentRow) -> None:
    con.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?)",
                [row.kind, row.file, row.generation, row.ntotal, row.factory])


def remove(con: duckdb.DuckDBPyConnection, kind: str, files: list[str]) -> None:
    """Drop segments replaced by a merge."""
    con.execute("DELETE FROM segments WHERE kind = ? AND list_contains(?, file)", [kind, files])


def bury(con: duckdb.DuckDBPyConnection, kind: str, ids: np.ndarray) -> None:
    """Record deleted ids of `kind`."""
    if len(ids):
        con.execute("INSERT INTO tombstones SELECT ?, unnest(?)", [kind, [int(i) for i in ids]])


def unbury(con: duckdb.DuckDBPyConnection, kind: str, ids: np.ndarray) -> None:
    """Forget tombstones whose vectors a merge left out of its segment."""
    if len(ids):
        con.execute("DELETE FROM tombstones WHERE kind = ? AND list_contains(?, id)", [kind, [int(i) for i in ids]])
