"""Merging segments without holding the collection: build the merged segment first, commit briefly.

A merge reads only immutable segment files and a snapshot of their tombstones taken when it is
planned, so the expensive part (gathering the live vectors, training and recall-checking an IVF
index once the merged size calls for one) runs outside any transaction: on the writer's thread with
the DuckDB file released, or on a background thread while the indexer goes on embedding and
committing. Readers keep their generation throughout, and a snapshot can be taken at any moment.

Its commit is a change of the segment list inside an ordinary transaction
(`collection.Transaction.apply_merge`): the merged files must all still be listed (another merge,
in this process or another, may have taken them: the merge is then dropped as stale), ids deleted
while it was built stay tombstoned in the new segment, and the tombstones of the vectors it left
out are forgotten. The old files are removed only after that generation is committed, so a crash
at any point of a merge leaves the previous generation whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from searchengine.store import faiss_index as fi
from searchengine.store.segments import Segment, SegmentedIndex

log = logging.getLogger(__name__)

TypeChooser = Callable[[str, Segment], "dict | None"]
"""Gives a merged segment the index type its size calls for (replacing its index); returns the
decision to record, or None when it stays as built."""


@dataclass(frozen=True)
class MergePlan:
    """Committed segments of one kind to merge, with their tombstones as they were when planned."""

    kind: str
    d: int
    parts: tuple[Segment, ...]
    """Copies sharing the segments' (immutable) FAISS indexes, holding their tombstones at plan time."""

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(s.file for s in self.parts if s.file)

    @property
    def dropped(self) -> np.ndarray:
        """The tombstoned ids the merged segment leaves out (their tombstones go with the old files)."""
        return dead_ids(self.parts)


def dead_ids(segments: Iterable[Segment]) -> np.ndarray:
    """The sorted tombstoned ids of `segments`, each once."""
    return np.unique(np.concatenate([np.zeros(0, np.int64), *(s.dead for s in segments)]))


@dataclass
class PreparedMerge:
    """A merged segment, built and typed, waiting for a transaction to list it."""

    plan: MergePlan
    merged: Segment
    choice: dict | None


def plan(index: SegmentedIndex, kind: str, first: int = 0, last: int | None = None) -> MergePlan | None:
    """Committed segments `first:last` of `kind` (a transaction's staged segment is never taken)."""
    committed = [s for s in index.segments if s.file is not None]
    part = committed[first:last]
    if not part:
        return None
    return MergePlan(kind, index.d, tuple(Segment(s.index, s.file, s.ids, s.dead) for s in part))


def build(merge: MergePlan, choose_type: TypeChooser) -> PreparedMerge:
    """One segment holding the plan's live vectors, at the type `choose_type` gives it."""
    ids, vecs = SegmentedIndex(merge.d, list(merge.parts)).ids_and_vectors()
    merged = Segment(fi.new_index("Flat", merge.d), None)
    if len(ids):
        fi.add(merged.index, vecs, ids)
    merged.ids = np.sort(ids)
    choice = choose_type(merge.kind, merged) if len(ids) else None
    return PreparedMerge(merge, merged, choice)


class BackgroundMerges:
    """At most one merge job at a time on a thread of its own; its result is taken by the writer's
    next commit (`ready`) or waited for at the end of a run (`wait`)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._job: Future[list[PreparedMerge]] | None = None

    @property
    def busy(self) -> bool:
        """A job is submitted and its result not yet taken."""
        return self._job is not None

    def submit(self, plans: list[MergePlan], choose_type: TypeChooser) -> None:
        if self._job is not None:
            raise RuntimeError("a merge job is already running")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clsp-search-merge")
        self._job = self._pool.submit(lambda: [build(p, choose_type) for p in plans])

    def ready(self) -> list[PreparedMerge]:
        """The finished job's merges (taken), or nothing while it runs."""
        if self._job is None or not self._job.done():
            return []
        return self.wait()

    def wait(self) -> list[PreparedMerge]:
        """Block until the job is done and take its merges; a job that failed is logged and dropped
        (the segments it would have merged stay as they are and are planned again)."""
        job, self._job = self._job, None
        if job is None:
            return []
        try:
            return job.result()
        except Exception as exc:  # noqa: BLE001 - a merge is an optimisation: the collection stays correct
            log.warning("a background merge failed and was dropped: %s", exc)
            return []

    def shutdown(self) -> None:
        """Wait for a running job and stop the thread (its result is dropped)."""
        self._job = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
