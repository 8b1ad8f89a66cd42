"""A collection on disk: FAISS segment files per index kind, one DuckDB file, one collection.json.

Layout of a collection directory::

    collection.json   schema version, model id, dim, metric, index descriptions, counts, generation,
                      and (a mirror of DuckDB's list) the segment files of each kind
    meta.duckdb       clips, captions, errors, runs, state (generation and id counters), and
                      segments / tombstones (searchengine.store.segment_log)
    speech.g<N>-<j>.faiss   segments of the speech index: one vector per clip (segment), ids = clips.id
    global.g<N>-<j>.faiss   one vector per global caption, ids = captions.id (captions.clip_id -> clips.id)
    fine.g<N>-<j>.faiss     one vector per fine caption, ids = captions.id
    speaker.g<N>-<j>.faiss  one 256-d speaker vector per clip that had enough voice to embed, ids =
                      clips.id (its own dimension: speaker vectors are not in the CLSP space)

A segment file is immutable: generation N writes only the vectors it adds (`<kind>.g<N>-<j>.faiss`),
deletions (and re-indexed files, deleted then added) are tombstones applied at search time, and a
merge (`Collection.compact`, or `merge_segments` after a commit once a kind has `MERGE_FACTOR`
segments of one size class) writes one segment for several and drops their tombstones; it is built
outside any transaction and listed by a short commit (`searchengine.store.merges`). Each kind is
searched as one index (`segments.SegmentedIndex`). A collection written before segments has one
`<kind>.faiss` per kind: it opens as one segment per kind and its next commit lists those files.

Crash safety is a small two-phase commit with DuckDB as the arbiter. A write (`Transaction.commit`)
1. writes every new segment to `<file>.pending` and fsyncs it,
2. commits the DuckDB transaction that lists the new segments (and drops merged ones), records the
   tombstones and sets `state.generation = N`,
3. renames the pending files to their names and removes files of segments a merge replaced, and
4. rewrites collection.json (tmp file + rename) with `generation = N`.
A crash before 2 leaves pending files no generation lists: a writer's open deletes them. A crash
after 2 leaves DuckDB one generation ahead of collection.json: opening finishes steps 3-4 (roll
forward; a reader reads the pending files as they are). Either way the FAISS files always agree
with the DuckDB rows after `open`. A write that fails (a full disk) rolls back the same way and
raises a `CollectionError` naming the generation the collection stays at.

Readers beside a writer. DuckDB lets one process open the file read-write or several read-only,
never both. A writer that sets `release_between_commits` (the indexer) holds the file only from
`begin` to the end of `commit` (steps 1-4 included), so between its commits the file is free.
`Collection.open_snapshot` (the server) takes that moment: it attaches the file read-only, copies
every table into an in-memory DuckDB, loads the FAISS files and detaches. Holding the file lock
while it reads means no writer is inside a commit, so the copy is one committed generation, never a
mix; a writer that wants the file meanwhile waits (`LOCK_WAIT_S`) and goes on.

`CLSP_SEARCH_KILL_AT=<point>[:<n>]` makes the process SIGKILL itself the n-th time (default the
first) a commit reaches `<point>`, one of `KILL_POINTS`: the crash tests use it to stop a writer
inside a commit, where a kill from outside rarely lands.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from searchengine.store import faiss_index as fi
from searchengine.store import merges, segment_files, segment_log
from searchengine.store.schema import (
    CORE_CLIP_COLUMNS,
    SCHEMA_VERSION,
    add_missing_core_columns,
    create_tables,
    ensure_columns,
    get_state,
    quote_ident,
    set_state,
    table_columns,
)
from searchengine.store.segments import Segment, SegmentedIndex

log = logging.getLogger(__name__)

KINDS = ("speech", "global", "fine")
SPEAKER_KIND = "speaker"
ALL_KINDS = (*KINDS, SPEAKER_KIND)
"""Every index file; `KINDS` are the CLSP-space ones a text or speech query can search."""
DEFAULT_SPEAKER_DIM = 256
CAPTION_KINDS = ("global", "fine")
INFO_FILE = "collection.json"
DB_FILE = "meta.duckdb"
AUDIO_DIR = "audio"
"""Audio that came inside a source (bytes in a dataset, members of a tar shard), extracted by the
indexer as content-addressed files: the collection owns them and the server serves them."""
_PENDING = re.compile(r"^(speech|global|fine|speaker)\.faiss\.g(\d+)\.pending$")
MERGE_FACTOR = 8
"""Segments of one size class a kind gathers before they are merged into one (`merge_segments`)."""
LOCK_WAIT_S = 60.0
"""How long a writer or a snapshot waits for the other side to free the DuckDB file."""
KILL_POINTS = ("pending_written", "before_db_commit", "after_db_commit", "after_rename", "after_info")
"""Where `CLSP_SEARCH_KILL_AT` can stop a commit (a merge's too): after the first pending segment
file, before and after the DuckDB commit, after the first rename of a segment file, after collection.json."""
_kill_counts: dict[str, int] = {}


class CollectionError(RuntimeError):
    """Anything wrong with a collection directory or a write to it."""


class ModelMismatchError(CollectionError):
    """The collection's vectors come from another model than the one offered; mixing them is meaningless."""

    def __init__(self, path: Path, needed: str, offered: str) -> None:
        self.needed, self.offered = needed, offered
        super().__init__(
            f"collection {path} was built with model '{needed}', not '{offered}': "
            f"use --model {needed.split('@')[0]} (the same weights) or index into a new collection"
        )


@dataclass(frozen=True)
class Caption:
    """A caption to store: `clip` indexes the clips passed in the same `add` call."""

    clip: int
    kind: str
    text: str
    generated: bool = False


def _kill_point(point: str) -> None:
    """SIGKILL this process here when CLSP_SEARCH_KILL_AT names `point` (see the module doc)."""
    spec = os.environ.get("CLSP_SEARCH_KILL_AT")
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _kill_counts[point] = _kill_counts.get(point, 0) + 1
    if _kill_counts[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflict" in text or "could not set" in text)


def _connect(target: str, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    """Connect to the DuckDB file, waiting up to `wait_s` while another process holds its lock."""
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        try:
            return duckdb.connect(target, read_only=read_only)
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def _fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _arrow_column(values: list[Any], dtype: str | None) -> pa.Array:
    """An Arrow column DuckDB can cast into `dtype`; JSON values are serialised, mixed types become text."""
    if dtype == "JSON" or any(isinstance(v, dict) for v in values):
        return pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _normalise(vectors: np.ndarray | None, dim: int, n: int, what: str) -> np.ndarray:
    if vectors is None or len(vectors) == 0:
        vectors = np.zeros((0, dim), np.float32)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    if vectors.shape != (n, dim):
        raise ValueError(f"{what}: expected shape ({n}, {dim}), got {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1)
    if n and not np.allclose(norms, 1.0, atol=1e-3):
        raise ValueError(f"{what}: vectors must be L2-normalised (norms {norms.min():.3f}..{norms.max():.3f})")
    return vectors


class Collection:
    """An open collection. Create with `Collection.create`, open with `Collection.open`."""

    def __init__(
        self, path: Path, con: duckdb.DuckDBPyConnection, info: dict, indexes: dict[str, SegmentedIndex],
        read_only: bool
    ) -> None:
        self.path = path
        self.con = con
        self.info = info
        self.indexes = indexes
        self.read_only = read_only
        self._tx: Transaction | None = None
        self.release_between_commits = False
        """When True the DuckDB file is closed after each commit or rollback and reopened by `begin`,
        so that snapshots (`open_snapshot`) can be taken between commits."""
        self.auto_merge = True
        """Merge the newest segments after a commit when `segments.merge_plan` says so (`merge_segments`)."""
        self.background_merges = False
        """Build automatic merges on a thread of their own; the next commit lists what is built
        (`searchengine.store.merges`), so a writer (the indexer) never waits for a merge."""
        self._merges = merges.BackgroundMerges()
        self._id_counters = self._counters(get_state(con)) if con is not None else (0, 0)
        """The id counters as this writer last committed them: how `_reacquire` tells another
        process's merge or deletion (taken in) from its indexing (refused)."""

    def id_counters(self) -> tuple[int, int]:
        """(next clip id, next caption id) as this writer last committed them: where ids handed out
        by workers start (`Transaction.claim_ids`)."""
        return self._id_counters

    @staticmethod
    def _counters(state: Mapping[str, int]) -> tuple[int, int]:
        return int(state.get("next_clip_id", 0)), int(state.get("next_caption_id", 0))

    # ----------------------------------------------------------------------------- lifecycle
    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        """True when `path` holds a collection (collection.json is the last file `create` writes)."""
        return (Path(path) / INFO_FILE).is_file()

    @classmethod
    def create(
        cls, path: str | os.PathLike, model_id: str, dim: int, index_factory: str = "auto"
    ) -> Collection:
        """Make an empty collection at `path` (the directory may exist but must not hold a collection)."""
        root = Path(path)
        if cls.exists(root):
            raise CollectionError(f"{root} already holds a collection; open it instead")
        root.mkdir(parents=True, exist_ok=True)
        # Leftovers of a create that crashed before collection.json was written.
        for name in os.listdir(root):
            if name.startswith(DB_FILE) or ".faiss" in name:
                os.remove(root / name)
        con = duckdb.connect(str(root / DB_FILE))
        con.begin()
        create_tables(con)
        segment_log.create_tables(con)
        con.commit()
        indexes = {kind: SegmentedIndex(dim) for kind in KINDS}
        indexes[SPEAKER_KIND] = SegmentedIndex(DEFAULT_SPEAKER_DIM)
        info = {
            "schema_version": SCHEMA_VERSION,
            "model_id": model_id,
            "dim": int(dim),
            "speaker_dim": DEFAULT_SPEAKER_DIM,
            "metric": "ip",
            "normalized": True,
            "index_factory": index_factory,
            "generation": 0,
            "indexes": {kind: idx.describe("IDMap2,Flat") for kind, idx in indexes.items()},
            "counts": {},
            "created": _now().isoformat(timespec="seconds"),
        }
        coll = cls(root, con, info, indexes, read_only=False)
        info["counts"] = coll._counts()
        _write_json_atomic(root / INFO_FILE, info)
        return coll

    @classmethod
    def stored_model_id(cls, path: str | os.PathLike) -> str | None:
        """The model id a collection was built with, read without opening it (None: no collection)."""
        root = Path(path)
        if not cls.exists(root):
            return None
        return json.loads((root / INFO_FILE).read_text(encoding="utf-8")).get("model_id")

    @classmethod
    def open(
        cls, path: str | os.PathLike, model_id: str | None = None, read_only: bool = False, mmap: bool = False
    ) -> Collection:
        """Open an existing collection, finishing or undoing an interrupted write first.

        `model_id`, when given, must equal the one the collection was built with. `read_only=True`
        (the server) changes nothing on disk; it reads a committed-but-unrenamed index if a writer
        died mid-commit. `mmap=True` maps IVF inverted lists instead of loading them.
        """
        root = Path(path)
        if not cls.exists(root):
            raise CollectionError(f"{root} is not a collection (no {INFO_FILE}); create it with `clsp-search index`")
        info = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))
        if info.get("schema_version") != SCHEMA_VERSION:
            raise CollectionError(
                f"{root} has schema version {info.get('schema_version')}, this version reads {SCHEMA_VERSION}"
            )
        if model_id is not None and info["model_id"] != model_id:
            raise ModelMismatchError(root, info["model_id"], model_id)
        try:
            con = duckdb.connect(str(root / DB_FILE), read_only=read_only)
        except duckdb.IOException as exc:
            raise CollectionError(f"cannot open {root / DB_FILE}: {exc}") from exc
        if not read_only:
            added = add_missing_core_columns(con)
            if added:
                log.info("%s: added columns %s (made by an older version)", root, ", ".join(added))
        db_gen = get_state(con)["generation"]
        try:
            indexes = cls._load_indexes(root, con, info, db_gen, read_only, mmap)
        except BaseException:
            con.close()
            raise
        coll = cls(root, con, info, indexes, read_only)
        if db_gen != info["generation"] and not read_only:
            coll._write_info(db_gen)
        return coll

    @classmethod
    def open_snapshot(cls, path: str | os.PathLike, wait_s: float = LOCK_WAIT_S) -> Collection:
        """One committed generation, copied: the metadata into an in-memory DuckDB, the indexes into
        memory. The file is held read-only only while copying, so a writer that releases it between
        commits (the indexer) can go on; the copy never changes. Waits up to `wait_s` for a writer
        inside a commit. Costs a copy of the tables: see benchmarks/RESULTS.md (live collection)."""
        root = Path(path)
        if not cls.exists(root):
            raise CollectionError(f"{root} is not a collection (no {INFO_FILE}); create it with `clsp-search index`")
        con = duckdb.connect(":memory:")
        target = str(root / DB_FILE).replace("'", "''")
        deadline = time.monotonic() + wait_s
        delay = 0.01
        while True:
            try:
                con.execute(f"ATTACH '{target}' AS committed (READ_ONLY)")
                break
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    con.close()
                    raise CollectionError(
                        f"cannot read {root / DB_FILE}: {exc}; another process holds it read-write "
                        "(an indexer that keeps it between commits); wait for it to finish"
                    ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        try:
            info = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))
            if info.get("schema_version") != SCHEMA_VERSION:
                raise CollectionError(
                    f"{root} has schema version {info.get('schema_version')}, this version reads {SCHEMA_VERSION}"
                )
            con.execute("COPY FROM DATABASE committed TO memory")
            db_gen = get_state(con)["generation"]
            indexes = cls._load_indexes(root, con, info, db_gen, read_only=True)
        except BaseException:
            con.close()
            raise
        finally:
            try:
                con.execute("DETACH committed")
            except duckdb.Error:
                pass
        info["info_generation"] = int(info["generation"])
        info["generation"] = db_gen
        return cls(root, con, info, indexes, read_only=True)

    @classmethod
    def _load_indexes(
        cls, root: Path, con: duckdb.DuckDBPyConnection, info: dict, db_gen: int, read_only: bool, mmap: bool = False,
        reuse: Mapping[str, Segment] | None = None,
    ) -> dict[str, SegmentedIndex]:
        """The segments of generation `db_gen` (the one `con` holds). A collection written before
        segments has one file per kind: each is loaded as that kind's single segment, under its own
        name, and the next commit lists it (`Transaction.__init__`), upgrading the collection in place."""
        info.setdefault("speaker_dim", DEFAULT_SPEAKER_DIM)
        dims = {kind: int(info["dim"]) for kind in KINDS} | {SPEAKER_KIND: int(info["speaker_dim"])}
        if segment_log.has_tables(con):
            try:
                return segment_files.load(root, con, dims, read_only, mmap, reuse)
            except FileNotFoundError as exc:
                raise CollectionError(f"{exc}; the collection cannot be read") from exc
        sources = cls._recover(root, int(info["generation"]), db_gen, read_only)
        out = {}
        for kind, d in dims.items():
            out[kind] = SegmentedIndex(d)
            if sources[kind].is_file():
                out[kind].segments.append(Segment(fi.read(sources[kind], mmap=mmap), f"{kind}.faiss"))
            elif kind != SPEAKER_KIND:
                raise CollectionError(f"{root}: index file {kind}.faiss is missing; the collection cannot be read")
        info["indexes"].setdefault(SPEAKER_KIND, out[SPEAKER_KIND].describe("IDMap2,Flat"))
        return out

    @staticmethod
    def _recover(root: Path, json_gen: int, db_gen: int, read_only: bool) -> dict[str, Path]:
        """Apply the commit protocol's recovery rules; return the file to load for each index."""
        sources = {kind: root / f"{kind}.faiss" for kind in ALL_KINDS}
        for name in sorted(os.listdir(root)):
            m = _PENDING.match(name)
            if not m:
                continue
            kind, gen = m.group(1), int(m.group(2))
            pending = root / name
            if gen == db_gen and gen > json_gen:  # committed in DuckDB, not yet renamed: roll forward
                if read_only:
                    sources[kind] = pending
                else:
                    os.replace(pending, sources[kind])
            elif not read_only:  # never committed (gen > db_gen) or a stale leftover: discard
                os.remove(pending)
        if not read_only:
            _fsync_dir(root)
        return sources

    def close(self) -> None:
        """Release the DuckDB file (a pending transaction is rolled back, a background merge not yet
        committed is dropped: `finish_merges` commits it)."""
        self._merges.shutdown()
        if self._tx is not None:
            self._tx.rollback()
        if self.con is not None:
            self.con.close()

    def release(self) -> None:
        """Close the DuckDB file between transactions (`begin` reopens it); no-op while one is open."""
        if self._tx is None and self.con is not None and not self.read_only:
            self.con.close()
            self.con = None  # type: ignore[assignment]

    def _reacquire(self, others_may_add: bool = False) -> None:
        """Reopen the DuckDB file for a transaction. Another process may have committed meanwhile: its
        merges and deletions (`clsp-search compact`, a deletion) are taken in (`_refresh`); clips it
        added are refused unless this writer only merges (`others_may_add`), because an indexer chose
        what to index from what the collection held when it started."""
        self.con = _connect(str(self.path / DB_FILE), read_only=False, wait_s=LOCK_WAIT_S)
        state = get_state(self.con)
        db_gen = state["generation"]
        if db_gen == self.generation:
            return
        if self._counters(state) != self._id_counters and not others_may_add:
            self.con.close()
            self.con = None  # type: ignore[assignment]
            raise CollectionError(
                f"{self.path} moved from generation {self.generation} to {db_gen} under this writer: "
                "another process indexed into it; run one indexer per collection and run this one again"
            )
        self._refresh(db_gen, state)

    def _refresh(self, db_gen: int, state: Mapping[str, int]) -> None:
        """Take in generation `db_gen`, committed by another process: its segment list and tombstones
        (segments this writer holds are files that never change, so they are reused, not read)."""
        info = json.loads((self.path / INFO_FILE).read_text(encoding="utf-8"))
        reuse = {s.file: s for ix in self.indexes.values() for s in ix.segments if s.file}
        self.indexes = self._load_indexes(self.path, self.con, info, db_gen, read_only=False, reuse=reuse)
        self.info = info
        self._id_counters = self._counters(state)
        if int(info["generation"]) != db_gen:
            self._write_info(db_gen)
        log.info("%s: took in generation %d, written by another process", self.path, db_gen)

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- properties
    @property
    def model_id(self) -> str:
        return self.info["model_id"]

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def audio_dir(self) -> Path:
        """The absolute folder of this collection's extracted audio (see `AUDIO_DIR`)."""
        return audio_dir(self.path)

    @property
    def generation(self) -> int:
        return int(self.info["generation"])

    @property
    def speaker_dim(self) -> int:
        return int(self.info.get("speaker_dim", DEFAULT_SPEAKER_DIM))

    def kind_dim(self, kind: str) -> int:
        """Vector dimension of index `kind`: the model's, or the speaker encoder's for 'speaker'."""
        return self.speaker_dim if kind == SPEAKER_KIND else self.dim

    def index(self, kind: str) -> SegmentedIndex:
        """The FAISS index of `kind` ('speech', 'global', 'fine' or 'speaker')."""
        if kind not in ALL_KINDS:
            raise ValueError(f"kind must be one of {ALL_KINDS}, not {kind!r}")
        return self.indexes[kind]

    def sql(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        """Run parameterised SQL on the metadata (for reading; writes go through `transaction`)."""
        return self.con.execute(query, params or [])

    # ----------------------------------------------------------------------------- reading
    def search(self, kind: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` inner products of L2-normalised `queries` [Q, dim] against index `kind`: (scores, ids)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        index = self.index(kind)
        if index.ntotal == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        return index.search(q, min(k, index.ntotal))

    def vectors(self, kind: str, ids: Sequence[int]) -> np.ndarray:
        """Stored vectors by id (exact for Flat segments, decoded for quantised ones)."""
        if not len(ids):
            return np.zeros((0, self.kind_dim(kind)), np.float32)
        return self.index(kind).reconstruct_batch(np.asarray([int(i) for i in ids], np.int64))

    def speaker_ids(self) -> np.ndarray:
        """Clip ids that have a speaker vector (clips indexed without attributes, or silent, have none)."""
        return np.concatenate([np.zeros(0, np.int64)] + [s.live_ids() for s in self.indexes[SPEAKER_KIND].segments])

    def caption_clip_ids(self, caption_ids: Sequence[int]) -> dict[int, int]:
        """captions.id -> clips.id, to turn a caption-index hit into a clip."""
        if not len(caption_ids):
            return {}
        rows = self.con.execute(
            "SELECT id, clip_id FROM captions WHERE list_contains(?, id)", [[int(i) for i in caption_ids]]
        ).fetchall()
        return {int(a): int(b) for a, b in rows}

    def recorded_model_specs(self) -> list[str]:
        """The `model` argument (a name or a path) of each indexing run made with this collection's
        model, newest first: where to look for weights that are not bundled. An old collection without
        a `runs` table, or runs without the argument, give none."""
        try:
            rows = self.con.execute(
                "SELECT args FROM runs WHERE model_id = ? ORDER BY id DESC", [self.model_id]
            ).fetchall()
        except duckdb.Error:
            return []
        specs: list[str] = []
        for (args,) in rows:
            try:
                spec = json.loads(args or "{}").get("model")
            except json.JSONDecodeError:
                continue
            if spec:
                specs.append(str(spec))
        return specs

    def _counts(self, con: duckdb.DuckDBPyConnection | None = None, exact_sources: bool = True) -> dict[str, int]:
        """Row counts. `exact_sources=False` (each commit's collection.json) reads them in one scan of
        `clips`: sources as clips whose `segment` is 0 (one per indexed source) instead of distinct
        source keys, and captions from the caption indexes' live counts (a commit keeps them equal to
        the rows, `check.problems`) instead of scanning `captions`. At a million clips the full count
        was the part of a commit that grew with the collection (benchmarks/bench_segments.py)."""
        con = con or self.con
        if exact_sources:
            c = con.execute(
                "SELECT (SELECT count(*) FROM clips), (SELECT count(DISTINCT source_key) FROM clips),"
                " (SELECT coalesce(sum(duration), 0) FROM clips),"
                " (SELECT count(*) FROM captions WHERE kind = 'global'),"
                " (SELECT count(*) FROM captions WHERE kind = 'fine'), (SELECT count(*) FROM errors)"
            ).fetchone()
        else:
            a = con.execute("SELECT count(*), count(*) FILTER (WHERE segment = 0), coalesce(sum(duration), 0)"
                            " FROM clips").fetchone()
            errors = con.execute("SELECT count(*) FROM errors").fetchone()[0]
            c = (*a, self.indexes["global"].ntotal, self.indexes["fine"].ntotal, errors)
        return {
            "clips": int(c[0]),
            "sources": int(c[1]),
            "audio_seconds": round(float(c[2]), 3),
            "global_captions": int(c[3]),
            "fine_captions": int(c[4]),
            "errors": int(c[5]),
        }

    def stats(self) -> dict[str, Any]:
        """Counts, index types and sizes, model and disk usage: what `info` and the API report."""
        disk = 0
        for p in self.path.iterdir():
            try:
                disk += p.stat().st_size if p.is_file() else 0
            except FileNotFoundError:  # a writer's pending file, renamed meanwhile
                continue
        cursor = self.con.cursor()  # callers on several threads: the connection itself serves one at a time
        try:
            counts = self._counts(cursor)
        finally:
            cursor.close()
        return {
            "path": str(self.path),
            "model_id": self.model_id,
            "dim": self.dim,
            "metric": "ip",
            "generation": self.generation,
            "counts": counts,
            "indexes": {kind: self.indexes[kind].describe(self.info["indexes"][kind]["factory"]) for kind in ALL_KINDS},
            "disk_bytes": disk,
        }

    def _write_info(self, generation: int) -> None:
        self.info["generation"] = int(generation)
        self.info["counts"] = self._counts(exact_sources=False)
        self.info["updated"] = _now().isoformat(timespec="seconds")
        self.info["segments"] = {kind: [s.file for s in self.indexes[kind].segments if s.file] for kind in ALL_KINDS}
        _write_json_atomic(self.path / INFO_FILE, self.info)

    # ----------------------------------------------------------------------------- writing
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """All writes inside the block become visible together, or not at all."""
        tx = self.begin()
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        tx.commit()

    def begin(self) -> Transaction:
        if self.read_only:
            raise CollectionError(f"{self.path} is open read-only")
        if self._tx is not None:
            raise CollectionError("a transaction is already open on this collection")
        if self.con is None:
            self._reacquire()
        self._tx = Transaction(self)
        return self._tx

    def add(
        self,
        clips: Sequence[Mapping[str, Any]],
        speech: np.ndarray,
        captions: Sequence[Caption] = (),
        caption_vectors: np.ndarray | None = None,
        column_types: Mapping[str, str] | None = None,
    ) -> np.ndarray:
        """Add clips with their speech vectors (and captions with theirs) in one commit; returns clip ids."""
        with self.transaction() as tx:
            return tx.add(clips, speech, captions, caption_vectors, column_types)

    def delete(self, ids: Sequence[int]) -> int:
        """Delete clips (rows, their captions and all their vectors) in one commit; returns how many existed."""
        with self.transaction() as tx:
            return tx.delete(ids)

    def merge_segments(self, factor: int = MERGE_FACTOR) -> int:
        """Automatic merge: per kind, when the newest `factor` committed segments are all of one size
        class or smaller (`segments.merge_plan`), merge them into one, built without a transaction and
        listed by a commit of its own; returns how many kinds were merged. Each vector is rewritten
        about once per size class (log_8 of the collection's size in commits), and a kind keeps at
        most about `factor` segments per class."""
        plans = self._merge_plans(factor)
        return self.commit_merges([merges.build(p, self._choose_type) for p in plans]) if plans else 0

    def compact(self) -> None:
        """Merge every kind's committed segments into one at the type its size calls for (IVF trained
        and recall-checked past `faiss_index.FLAT_MAX`), leaving tombstoned vectors out, and let
        DuckDB reclaim the space of deleted rows. The merge is built before its commit takes the
        DuckDB file (`searchengine.store.merges`): with `release_between_commits` a server's snapshot
        and an indexer's commits go on meanwhile, and what they commit is kept. One commit: a crash
        anywhere leaves the previous generation."""
        self._merges.wait()  # a background merge's segments are merged here anyway
        if self.release_between_commits:
            self.release()
        plans = [p for p in (merges.plan(self.indexes[kind], kind) for kind in ALL_KINDS) if p is not None]
        self.commit_merges([merges.build(p, self._choose_type) for p in plans], always=True)
        if self.con is None:
            self._reacquire(others_may_add=True)
        self.con.execute("CHECKPOINT")
        if self.release_between_commits:
            self.release()

    def finish_merges(self) -> None:
        """Wait for a background merge and commit it, then merge inline whatever is still due (the
        end of an indexing run: it leaves the collection as an inline merge policy would)."""
        self.commit_merges(self._merges.wait())
        if self.auto_merge:
            self.merge_segments()

    def _merge_plans(self, factor: int) -> list[merges.MergePlan]:
        from searchengine.store.segments import merge_plan

        out = []
        for kind in ALL_KINDS:
            committed = [s.index.ntotal for s in self.indexes[kind].segments if s.file is not None]
            first = merge_plan(committed, factor)
            if first is not None:
                out.append(merges.plan(self.indexes[kind], kind, first))
        return [p for p in out if p is not None]

    def _merge_after_commit(self) -> None:
        """The automatic merge a commit starts: inline, or handed to the background thread."""
        if not self.background_merges:
            self.merge_segments()
        elif not self._merges.busy:
            plans = self._merge_plans(MERGE_FACTOR)
            if plans:
                self._merges.submit(plans, self._choose_type)

    def commit_merges(self, prepared: list[merges.PreparedMerge], always: bool = False) -> int:
        """List built merges in one commit; returns how many were still current. Nothing is committed
        when none was, unless `always` (compact: its generation is the merged one)."""
        if not prepared and not always:
            return 0
        if self.con is None:
            self._reacquire(others_may_add=True)
        tx = self.begin()
        tx.merging = True
        try:
            applied = sum(tx.apply_merge(p) for p in prepared)
        except BaseException:
            tx.rollback()
            raise
        if applied or always:
            tx.commit()
        else:
            tx.rollback()
        return applied

    def _choose_type(self, kind: str, seg: Segment) -> dict | None:
        """Give a new segment the index type its own size calls for, once there is enough data to train
        it and the type passes its recall check (`faiss_index.checked_index`); returns the decision
        (None: it stays Flat). A declined type is tried again at twice the size. Reads `info` only,
        so a merge can run it on a thread of its own."""
        n = int(seg.index.ntotal)
        want = self._desired_factory(n, self.kind_dim(kind))
        entry = self.info["indexes"][kind]
        if fi.family(want) == "flat" or n < fi.min_train_size(want) or n < 2 * int(entry.get("choice", {}).get("declined_at", 0)):
            return None
        ids, vecs = fi.ids_and_vectors(seg.index)
        seg.index, choice = fi.checked_index(want, vecs, ids, self.kind_dim(kind))
        log.info("%s index: %s", kind, choice["reason"])
        return choice

    def _desired_factory(self, n: int, dim: int | None = None) -> str:
        configured = self.info.get("index_factory", "auto")
        return fi.choose_factory(n, dim or self.dim) if configured == "auto" else configured



class Transaction:
    """Staged writes to a collection; `commit` makes them durable with the protocol in the module doc."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll
        self.con = coll.con
        self.dirty: set[str] = set()
        self.con.begin()
        self.state = get_state(self.con)
        self._factories = {k: coll.info["indexes"][k]["factory"] for k in ALL_KINDS}
        self._choices = {k: coll.info["indexes"][k].get("choice") for k in ALL_KINDS}
        # What rollback restores: each kind's segment list and tombstones as committed.
        self._saved = {k: (list(ix.segments), [s.dead for s in ix.segments]) for k, ix in coll.indexes.items()}
        self._fresh: dict[str, Segment] = {}
        self._settled: set[int] = set()  # id() of segments whose type is decided (merged ones)
        self.obsolete: list[str] = []
        """Segment files this transaction replaces: removed once its generation is committed."""
        self.merging = False
        """True for the commit of a merge (which does not start another)."""
        self._reserved = np.zeros(0, np.int64)
        self._reserved_captions = np.zeros(0, np.int64)
        if not segment_log.has_tables(self.con):
            self._upgrade()

    def _upgrade(self) -> None:
        """List an old collection's one file per kind as that kind's first segment (in this transaction)."""
        segment_log.create_tables(self.con)
        for kind, index in self.coll.indexes.items():
            for seg in list(index.segments):
                if seg.index.ntotal:
                    segment_log.add(self.con, segment_log.SegmentRow(
                        kind, seg.file, 0, int(seg.index.ntotal), self._factories[kind]))
                else:
                    index.segments.remove(seg)
                    self.obsolete.append(seg.file)

    def _take_ids(self, key: str, n: int) -> np.ndarray:
        first = self.state[key]
        self.state[key] = first + n
        set_state(self.con, key, first + n)
        return np.arange(first, first + n, dtype=np.int64)

    def reserve_clip_ids(self, n: int) -> np.ndarray:
        """Clip ids for vectors written elsewhere (Ray workers writing segments with
        `segments.write_segment`); their rows go in with `add(..., reserved=ids)`."""
        ids = self._take_ids("next_clip_id", n)
        self._reserved = np.concatenate([self._reserved, ids])
        return ids

    def claim_ids(self, clip_ids: Sequence[int] | np.ndarray, caption_ids: Sequence[int] | np.ndarray = ()) -> None:
        """Take ids that workers were handed from a block starting at the committed counters
        (`Collection.id_counters`: Ray actors draw blocks from one allocator, and their chunks may
        commit in any order) as this transaction's reserved ids, and move the counters past them.
        Ids a row or vector already has are refused."""
        for key, table, reserved_attr, ids in (("next_clip_id", "clips", "_reserved", clip_ids),
                                               ("next_caption_id", "captions", "_reserved_captions", caption_ids)):
            ids = np.unique(np.asarray(ids, np.int64))
            if not len(ids):
                continue
            taken = self.con.execute(f"SELECT count(*) FROM {table} WHERE list_contains(?, id)",
                                     [ids.tolist()]).fetchone()[0]
            reserved = getattr(self, reserved_attr)
            if taken or ids.min() < 0 or np.isin(ids, reserved).any():
                raise ValueError(f"claimed {table} ids are already in use")
            if ids.max() + 1 > self.state[key]:
                self.state[key] = int(ids.max()) + 1
                set_state(self.con, key, self.state[key])
            setattr(self, reserved_attr, np.concatenate([reserved, ids]))

    def adopt_segment(self, kind: str, path: str | os.PathLike) -> int:
        """List a segment file another process wrote in this transaction's generation: the commit
        renames it into the collection (same file system; copied otherwise), so a distributed commit
        is a manifest update. Its ids must be reserved by this transaction and new; returns its size."""
        index = fi.read(path)
        if index.d != self.coll.kind_dim(kind):
            raise ValueError(f"{path}: {index.d}-d vectors, the {kind} index holds {self.coll.kind_dim(kind)}-d")
        seg = Segment(index, None, source=Path(path))
        _, vecs = fi.ids_and_vectors(index)
        if kind in ("speech", SPEAKER_KIND) and not np.isin(seg.ids, self._reserved).all():
            raise ValueError(f"{path}: holds clip ids this transaction did not reserve (reserve_clip_ids)")
        if kind in CAPTION_KINDS and not np.isin(seg.ids, self._reserved_captions).all():
            raise ValueError(f"{path}: holds caption ids this transaction did not claim (claim_ids)")
        if len(np.unique(seg.ids)) != len(seg.ids) or self.coll.indexes[kind].contains(seg.ids).any():
            raise ValueError(f"{path}: holds an id twice or one the {kind} index already has")
        _normalise(vecs, self.coll.kind_dim(kind), len(seg.ids), f"{path} vectors")
        self.coll.indexes[kind].segments.append(seg)
        self._settled.add(id(seg))  # listed as written: its type is the writer's
        self.dirty.add(kind)
        return len(seg.ids)

    def _staged(self, kind: str) -> Segment:
        """The in-memory segment this transaction adds to `kind` (created on first use, searched with
        the committed ones, written as a new segment file by `commit`)."""
        seg = self._fresh.get(kind)
        if seg is None:
            seg = Segment(fi.new_index("Flat", self.coll.kind_dim(kind)), None)
            self.coll.indexes[kind].segments.append(seg)
            self._fresh[kind] = seg
        return seg

    def _add_vectors(self, kind: str, vectors: np.ndarray, ids: np.ndarray) -> None:
        if not len(ids):
            return
        self.dirty.add(kind)
        seg = self._staged(kind)
        fi.add(seg.index, vectors, ids)
        seg.ids = np.sort(np.concatenate([seg.ids, np.asarray(ids, np.int64)]))

    def _settle_type(self, kind: str, seg: Segment) -> None:
        """A new segment's index type (`Collection._choose_type`), recorded in this transaction."""
        if id(seg) in self._settled:
            return
        choice = self.coll._choose_type(kind, seg)
        if choice is not None:
            self._record_type(kind, choice)
            self._settled.add(id(seg))

    def _record_type(self, kind: str, choice: dict) -> None:
        entry = self.coll.info["indexes"][kind]
        entry["factory"] = choice["factory"]
        entry["choice"] = choice

    def apply_merge(self, prepared: merges.PreparedMerge) -> bool:
        """List a built merge in place of the segments it merged; False (nothing changed) when some of
        them are no longer listed (another merge took them). Ids deleted while it was built stay
        tombstoned; the tombstones of the vectors it left out are forgotten. The old files stay until
        this generation is committed, so readers of older generations keep theirs."""
        plan, merged = prepared.plan, prepared.merged
        index = self.coll.indexes[plan.kind]
        listed = {s.file: s for s in index.segments if s.file}
        files = plan.files
        if not all(f in listed for f in files):
            log.info("%s: a merge of %d segments was dropped: some were merged meanwhile", plan.kind, len(files))
            return False
        dropped = plan.dropped
        merged.dead = np.setdiff1d(merges.dead_ids(listed[f] for f in files), dropped)
        segment_log.unbury(self.con, plan.kind, dropped)
        segment_log.remove(self.con, plan.kind, list(files))
        self.obsolete += list(files)
        merged_away = set(files)
        kept = [s for s in index.segments if s.file not in merged_away]
        at = next((i for i, s in enumerate(kept) if s.file is None), len(kept))  # before the staged segment
        index.segments = kept[:at] + ([merged] if merged.index.ntotal else []) + kept[at:]
        if prepared.choice is not None:
            self._record_type(plan.kind, prepared.choice)
        self._settled.add(id(merged))
        self.dirty.add(plan.kind)
        return True

    def add(
        self,
        clips: Sequence[Mapping[str, Any]],
        speech: np.ndarray,
        captions: Sequence[Caption] = (),
        caption_vectors: np.ndarray | None = None,
        column_types: Mapping[str, str] | None = None,
        run_id: int | None = None,
        speaker_rows: Sequence[int] = (),
        speaker_vectors: np.ndarray | None = None,
        reserved: np.ndarray | None = None,
        caption_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Stage clips (dicts of column -> value; unknown keys become new typed columns) and vectors.

        `speaker_vectors[j]` belongs to `clips[speaker_rows[j]]`: only clips with enough voice have one.
        With `reserved` (ids from `reserve_clip_ids` or `claim_ids`) the rows take those ids and their
        speech vectors come in segments adopted by `adopt_segment` (`speech` is ignored); likewise
        `caption_ids` (from `claim_ids`) for the captions, whose vectors are then adopted too.
        """
        dim = self.coll.dim
        if reserved is not None:
            reserved = np.asarray(reserved, np.int64)
            if len(reserved) != len(clips) or not np.isin(reserved, self._reserved).all():
                raise ValueError("reserved: one id per clip, each from this transaction's reserve_clip_ids")
        speech = _normalise(speech, dim, len(clips), "speech vectors") if reserved is None else None
        if caption_ids is not None:
            caption_ids = np.asarray(caption_ids, np.int64)
            if len(caption_ids) != len(captions) or not np.isin(caption_ids, self._reserved_captions).all():
                raise ValueError("caption_ids: one id per caption, each from this transaction's claim_ids")
        else:
            caption_vectors = _normalise(caption_vectors, dim, len(captions), "caption vectors")
        speaker_vectors = _normalise(speaker_vectors, self.coll.speaker_dim, len(speaker_rows), "speaker vectors")
        if not clips:
            return np.zeros(0, np.int64)
        for c in clips:
            for required in ("source_key", "source_path"):
                if not c.get(required):
                    raise ValueError(f"every clip needs '{required}'")
        ids = self._take_ids("next_clip_id", len(clips)) if reserved is None else reserved
        now = _now()
        rows = [
            {**c, "id": int(i), "segment": int(c.get("segment", 0)), "run_id": c.get("run_id", run_id), "added_at": now}
            for c, i in zip(clips, ids, strict=False)
        ]
        ensure_columns(self.con, "clips", rows, column_types)
        types = table_columns(self.con, "clips")
        names = [n for n in types if any(n in r for r in rows)]
        table = pa.table({n: _arrow_column([r.get(n) for r in rows], types[n]) for n in names})
        self._insert("clips", table)
        if speech is not None:
            self._add_vectors("speech", speech, ids)
        if len(speaker_rows):
            self._add_vectors(SPEAKER_KIND, speaker_vectors, ids[np.asarray(speaker_rows, np.int64)])

        if captions:
            cap_ids = self._take_ids("next_caption_id", len(captions)) if caption_ids is None else caption_ids
            for c in captions:
                if c.kind not in CAPTION_KINDS:
                    raise ValueError(f"caption kind must be one of {CAPTION_KINDS}, not {c.kind!r}")
            cap_table = pa.table(
                {
                    "id": pa.array(cap_ids, pa.int64()),
                    "clip_id": pa.array([int(ids[c.clip]) for c in captions], pa.int64()),
                    "kind": pa.array([c.kind for c in captions], pa.string()),
                    "text": pa.array([c.text for c in captions], pa.string()),
                    "generated": pa.array([bool(c.generated) for c in captions], pa.bool_()),
                }
            )
            self._insert("captions", cap_table)
            kinds = np.array([c.kind for c in captions])
            for kind in CAPTION_KINDS if caption_ids is None else ():
                sel = np.flatnonzero(kinds == kind)
                self._add_vectors(kind, caption_vectors[sel], cap_ids[sel])
        return ids

    def _insert(self, table: str, data: pa.Table) -> None:
        self.con.register("_incoming", data)
        try:
            cols = ", ".join(quote_ident(n) for n in data.column_names)
            self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _incoming")
        finally:
            self.con.unregister("_incoming")

    def delete(self, ids: Sequence[int]) -> int:
        """Stage deletion of clips by id, with their captions and vectors; returns how many existed."""
        id_list = sorted({int(i) for i in ids})
        if not id_list:
            return 0
        present = [r[0] for r in self.con.execute("SELECT id FROM clips WHERE list_contains(?, id)", [id_list]).fetchall()]
        caps = self.con.execute("SELECT id, kind FROM captions WHERE list_contains(?, clip_id)", [id_list]).fetchall()
        self.con.execute("DELETE FROM captions WHERE list_contains(?, clip_id)", [id_list])
        self.con.execute("DELETE FROM clips WHERE list_contains(?, id)", [id_list])
        removals = {"speech": np.array(present, np.int64), SPEAKER_KIND: np.array(present, np.int64)}
        for kind in CAPTION_KINDS:
            removals[kind] = np.array([c for c, k in caps if k == kind], np.int64)
        for kind, rm in removals.items():
            self._bury(kind, rm)
        return len(present)

    def _bury(self, kind: str, ids: np.ndarray) -> None:
        """Hide vectors: tombstones for committed segments (kept until a merge), removal from the staged one."""
        if not len(ids):
            return
        for hit in self.coll.indexes[kind].bury(ids).values():
            segment_log.bury(self.con, kind, hit)
        self.dirty.add(kind)

    def set_columns(
        self, ids: Sequence[int], values: Mapping[str, Sequence[Any]], column_types: Mapping[str, str] | None = None
    ) -> None:
        """Stage new values of (possibly new) columns for existing clips: `values[col][j]` is clip `ids[j]`'s.

        For facts derived after the clips landed (words binned on the whole collection, speaker
        clusters); one UPDATE joined on an Arrow table, not one statement per clip.
        """
        if not len(ids) or not values:
            return
        ensure_columns(self.con, "clips", [dict.fromkeys(values)], column_types)
        types = table_columns(self.con, "clips")
        data = {"id": pa.array([int(i) for i in ids], pa.int64())}
        data.update({n: _arrow_column(list(v), types[n]) for n, v in values.items()})
        self.con.register("_updates", pa.table(data))
        try:
            sets = ", ".join(f"{quote_ident(n)} = _updates.{quote_ident(n)}" for n in values)
            self.con.execute(f"UPDATE clips SET {sets} FROM _updates WHERE clips.id = _updates.id")
        finally:
            self.con.unregister("_updates")

    def add_captions(
        self, clip_ids: Sequence[int], kind: str, texts: Sequence[str], vectors: np.ndarray, generated: bool = False
    ) -> np.ndarray:
        """Stage captions of existing clips (`texts[j]` describes clip `clip_ids[j]`); returns caption ids."""
        if kind not in CAPTION_KINDS:
            raise ValueError(f"caption kind must be one of {CAPTION_KINDS}, not {kind!r}")
        vectors = _normalise(vectors, self.coll.dim, len(texts), "caption vectors")
        if not len(texts):
            return np.zeros(0, np.int64)
        cap_ids = self._take_ids("next_caption_id", len(texts))
        table = pa.table(
            {
                "id": pa.array(cap_ids, pa.int64()),
                "clip_id": pa.array([int(i) for i in clip_ids], pa.int64()),
                "kind": pa.array([kind] * len(texts), pa.string()),
                "text": pa.array(list(texts), pa.string()),
                "generated": pa.array([bool(generated)] * len(texts), pa.bool_()),
            }
        )
        self._insert("captions", table)
        self._add_vectors(kind, vectors, cap_ids)
        return cap_ids

    def delete_captions(self, caption_ids: Sequence[int]) -> int:
        """Stage deletion of captions (rows and vectors) by id; returns how many existed."""
        id_list = sorted({int(i) for i in caption_ids})
        if not id_list:
            return 0
        rows = self.con.execute("SELECT id, kind FROM captions WHERE list_contains(?, id)", [id_list]).fetchall()
        self.con.execute("DELETE FROM captions WHERE list_contains(?, id)", [id_list])
        for kind in CAPTION_KINDS:
            self._bury(kind, np.array([c for c, k in rows if k == kind], np.int64))
        return len(rows)

    def record_error(
        self,
        source_key: str,
        path: str,
        stage: str,
        reason: str,
        message: str,
        content_hash: str | None = None,
        run_id: int | None = None,
    ) -> None:
        """Note why a file could not be indexed (the run goes on); replaces older errors of the same source."""
        self.con.execute("DELETE FROM errors WHERE source_key = ?", [source_key])
        (eid,) = self._take_ids("next_error_id", 1)
        self.con.execute(
            "INSERT INTO errors VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [int(eid), source_key, path, stage, reason, message, content_hash, run_id, _now()],
        )

    def clear_errors(self, source_keys: Sequence[str]) -> None:
        """Forget old errors of sources that have now been indexed successfully."""
        if source_keys:
            self.con.execute("DELETE FROM errors WHERE list_contains(?, source_key)", [list(source_keys)])

    def start_run(self, source: str, model_id: str, args: Mapping[str, Any]) -> int:
        """Open a row in `runs`; runs left 'running' by a killed process are marked 'interrupted'."""
        self.con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
        (rid,) = self._take_ids("next_run_id", 1)
        self.con.execute(
            "INSERT INTO runs (id, started, source, model_id, status, args) VALUES (?, ?, ?, ?, 'running', ?)",
            [int(rid), _now(), source, model_id, json.dumps(dict(args), default=str)],
        )
        return int(rid)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set columns of a `runs` row (names checked against the table, values bound)."""
        allowed = set(table_columns(self.con, "runs")) - {"id"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown runs columns: {sorted(unknown)}")
        if fields:
            sets = ", ".join(f"{quote_ident(k)} = ?" for k in fields)
            self.con.execute(f"UPDATE runs SET {sets} WHERE id = ?", [*fields.values(), int(run_id)])

    def commit(self) -> None:
        """Durably apply everything staged (see the module doc for the order of writes)."""
        coll = self.coll
        root = coll.path
        gen = self.state["generation"] + 1
        written: list[tuple[Path, str, Segment]] = []
        try:
            for built in coll._merges.ready():  # a background merge finished: listed by this commit
                self.apply_merge(built)
            for kind in ALL_KINDS:
                new = [s for s in coll.indexes[kind].segments if s.file is None and s.index.ntotal]
                for j, seg in enumerate(new):
                    self._settle_type(kind, seg)
                    name = segment_log.segment_file(kind, gen, j)
                    written.append((segment_files.place_pending(seg, root, name), name, seg))
                    segment_log.add(self.con, segment_log.SegmentRow(
                        kind, name, gen, int(seg.index.ntotal), coll.info["indexes"][kind]["factory"]))
                    _kill_point("pending_written")
            set_state(self.con, "generation", gen)
            _kill_point("before_db_commit")
            self.con.commit()
        except (OSError, RuntimeError, duckdb.Error) as exc:
            self.rollback()
            raise CollectionError(
                f"could not commit generation {gen} to {root}: {exc}. Nothing of it was kept: the collection "
                f"is still at generation {gen - 1}. Free disk space (or fix the cause) and run the command again"
            ) from exc
        except BaseException:
            self.rollback()
            raise
        _kill_point("after_db_commit")
        coll._tx = None
        for index in coll.indexes.values():
            index.segments = [s for s in index.segments if s.file is not None or s.index.ntotal]
        for pending, name, seg in written:
            os.replace(pending, root / name)
            seg.file, seg.source = name, None
            _kill_point("after_rename")
        for name in self.obsolete:  # replaced by a merge: no generation from this one on lists them
            try:
                os.remove(root / name)
            except FileNotFoundError:
                pass
        _fsync_dir(root)
        for kind in ALL_KINDS:
            entry = coll.info["indexes"][kind]
            choice = entry.get("choice")
            coll.info["indexes"][kind] = coll.indexes[kind].describe(entry["factory"])
            if choice:
                coll.info["indexes"][kind]["choice"] = choice
        coll._write_info(gen)
        _kill_point("after_info")
        coll._id_counters = coll._counters(self.state)
        if coll.release_between_commits:
            coll.release()  # before a merge is built, so readers can take snapshots meanwhile
        if coll.auto_merge and not self.merging:
            coll._merge_after_commit()

    def rollback(self) -> None:
        """Drop staged writes: DuckDB rolls back, each kind gets its committed segments and tombstones back."""
        coll = self.coll
        try:
            self.con.rollback()
        except duckdb.Error:
            pass
        for kind in ALL_KINDS:
            coll.info["indexes"][kind]["factory"] = self._factories[kind]
            if self._choices[kind] is None:
                coll.info["indexes"][kind].pop("choice", None)
            else:
                coll.info["indexes"][kind]["choice"] = self._choices[kind]
        for kind, (segments, dead) in self._saved.items():
            coll.indexes[kind].segments = segments
            for seg, d in zip(segments, dead, strict=True):
                seg.dead = d
        for name in os.listdir(coll.path):
            m = _PENDING.match(name) or segment_log.SEGMENT_FILE.match(name.removesuffix(".pending"))
            if name.endswith(".pending") and m and int(m.group(2)) > coll.generation:
                try:
                    os.remove(coll.path / name)
                except OSError:
                    pass
        coll._tx = None
        if coll.release_between_commits:
            coll.release()


def audio_dir(collection: str | os.PathLike) -> Path:
    """Where a collection at `collection` keeps extracted audio, whether or not it exists yet."""
    return Path(os.path.abspath(collection)) / AUDIO_DIR


def core_columns() -> list[str]:
    """Names of the fixed `clips` columns (everything else in the table came from manifests)."""
    return list(CORE_CLIP_COLUMNS)
