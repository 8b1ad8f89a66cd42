"""One index kind as a list of immutable FAISS segments plus tombstones, searched as one index.

A commit adds a segment (the vectors it staged) instead of rewriting the kind's whole index, and a
deletion adds tombstones (ids that stay in their segment's file but must never answer) instead of
rewriting the segment. `SegmentedIndex` hides both from the search code: it offers the parts of the
faiss.Index interface the collection's callers use (`ntotal`, `d`, `search`, `reconstruct`) and the
filtered-search entry points `faiss_index.search_ids` / `ids_and_vectors` hand over to it.

Search over segments equals search over one index of the same vectors: every segment returns its
own top-n among its live, allowed ids (a filter is cut to each segment's ids, so each segment picks
its own strategy, an IDSelector included), and the lists are merged by score. For exact (Flat)
segments the union of per-segment top-n holds the global top-n, with the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from searchengine.store import faiss_index as fi

TOMBSTONES_AS_EXCLUDED_MAX = 256
"""A segment with at most this many tombstones hides them by over-fetching (the `excluded` path);
with more, the search is restricted to the segment's live ids (selector or membership check)."""


def index_ids(index: faiss.Index) -> np.ndarray:
    """The ids an index holds, sorted, without decoding vectors (Flat: the id map; IVF: the lists)."""
    if index.ntotal == 0:
        return np.zeros(0, np.int64)
    ivf = fi.ivf_of(index)
    if ivf is None:
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    inv = ivf.invlists
    parts = [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy() for i in range(ivf.nlist) if inv.list_size(i)]
    return np.sort(np.concatenate(parts).astype(np.int64))


def _members(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Mask of `values` found in the sorted array `sorted_ids`."""
    if not len(sorted_ids) or not len(values):
        return np.zeros(len(values), bool)
    at = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return sorted_ids[at] == values


@dataclass
class Segment:
    """One immutable index file (or the staged, not yet written one: `file` None) and its ids."""

    index: faiss.Index
    file: str | None
    ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """This segment's tombstoned ids, sorted."""
    source: Path | None = None
    """A staged segment another process already wrote (`write_segment`): the commit renames it."""

    def __post_init__(self) -> None:
        if self.ids is None:
            self.ids = index_ids(self.index)

    @property
    def live(self) -> int:
        return int(self.index.ntotal) - len(self.dead)

    def cut(self, wanted: np.ndarray) -> np.ndarray:
        """The ids of sorted `wanted` that live in this segment (range first: segments hold id ranges)."""
        if not len(self.ids) or not len(wanted):
            return np.zeros(0, np.int64)
        lo = np.searchsorted(wanted, self.ids[0], side="left")
        hi = np.searchsorted(wanted, self.ids[-1], side="right")
        part = wanted[lo:hi]
        part = part[_members(part, self.ids)]
        return part[~_members(part, self.dead)] if len(self.dead) else part

    def live_ids(self) -> np.ndarray:
        return self.ids[~_members(self.ids, self.dead)] if len(self.dead) else self.ids


def write_segment(vectors: np.ndarray, ids: np.ndarray, path: str | Path) -> Path:
    """Write a segment file from any process (a Ray worker): exact, fsynced, ready to be listed by a
    transaction's `adopt_segment` with ids that transaction reserved (`reserve_clip_ids`)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = fi.new_index("Flat", vectors.shape[1])
    fi.add(index, vectors, np.asarray(ids, np.int64))
    fi.write(index, path)
    return Path(path)


def merge_plan(sizes: list[int], factor: int) -> int | None:
    """Where a merge of the newest segments should start, or None: when the newest `factor` segments
    are all of the size class (powers of `factor`) of the smallest of them or below, they and any
    newer ones are merged; a tiered policy as in Lucene and LSM trees."""
    if len(sizes) < factor:
        return None

    def size_class(n: int) -> int:
        return int(np.log(max(n, 1)) / np.log(factor))

    tail = sizes[-factor:]
    top = size_class(min(tail))
    return len(sizes) - factor if all(size_class(n) <= top for n in tail) else None


class SegmentedIndex:
    """The segments of one index kind, oldest first, searched as one index (see the module doc)."""

    def __init__(self, d: int, segments: list[Segment] | None = None) -> None:
        self.d = int(d)
        self.segments: list[Segment] = list(segments or [])

    # ------------------------------------------------------------------ what faiss.Index offers
    @property
    def ntotal(self) -> int:
        """Live vectors: stored ones minus tombstones."""
        return sum(s.live for s in self.segments)

    @property
    def is_trained(self) -> bool:
        return True

    def reconstruct(self, key: int) -> np.ndarray:
        for s in self.segments:
            if _members(np.array([key], np.int64), s.ids)[0] and not _members(np.array([key], np.int64), s.dead)[0]:
                return s.index.reconstruct(int(key))
        raise RuntimeError(f"id {key} not found in any segment")

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss-style batch search: [Q, k] scores and ids, -1 where fewer than k exist."""
        q = np.ascontiguousarray(np.atleast_2d(q), dtype=np.float32)
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        for row in range(len(q)):
            s, i, _ = self.search_ids(q[row], k, None)
            scores[row, :len(i)], ids[row, :len(i)] = s, i
        return scores, ids

    # ------------------------------------------------------------------ what faiss_index hands over
    def search_ids(
        self,
        q: np.ndarray,
        n: int,
        allowed: np.ndarray | None,
        excluded: set[int] | frozenset[int] = frozenset(),
        strategy: str = "auto",
        selector_max_fraction: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """`faiss_index.search_ids` over every segment, merged by score: the strategy reported is the
        one the largest segment searched used."""
        if allowed is not None:
            allowed = np.sort(np.asarray(allowed, np.int64))
        all_scores, all_ids = [], []
        used, largest = ("none" if allowed is None else "selector"), -1
        for seg in self.segments:
            if seg.live <= 0:
                continue
            seg_allowed, seg_excluded = None, excluded
            if allowed is not None:
                seg_allowed = seg.cut(allowed)
                if not len(seg_allowed):
                    continue
            elif len(seg.dead) > TOMBSTONES_AS_EXCLUDED_MAX:
                seg_allowed = seg.live_ids()
            elif len(seg.dead):
                seg_excluded = set(excluded) | set(seg.dead.tolist())
            s, i, how = fi.search_ids(seg.index, q, n, seg_allowed, seg_excluded, strategy, selector_max_fraction)
            all_scores.append(s)
            all_ids.append(i)
            if seg.live > largest:
                largest, used = seg.live, ("none" if allowed is None else how)
        if not all_ids:
            return np.zeros(0, np.float32), np.zeros(0, np.int64), used
        scores, ids = np.concatenate(all_scores), np.concatenate(all_ids)
        order = np.argsort(-scores, kind="stable")[:n]
        return scores[order].astype(np.float32), ids[order], used

    def ids_and_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every live (id, vector), segment by segment."""
        ids, vecs = [np.zeros(0, np.int64)], [np.zeros((0, self.d), np.float32)]
        for seg in self.segments:
            i, v = fi.ids_and_vectors(seg.index)
            if len(seg.dead):
                keep = ~_members(i, seg.dead)
                i, v = i[keep], v[keep]
            ids.append(np.asarray(i, np.int64))
            vecs.append(v)
        return np.concatenate(ids), np.vstack(vecs)

    def reconstruct_batch(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors of live `keys`, in their order."""
        keys = np.asarray(keys, np.int64)
        out = np.zeros((len(keys), self.d), np.float32)
        found = np.zeros(len(keys), bool)
        for seg in self.segments:
            here = _members(keys, seg.ids) & ~_members(keys, seg.dead) & ~found
            if here.any():
                out[here] = fi.reconstruct(seg.index, keys[here])
                found |= here
        if not found.all():
            raise RuntimeError(f"ids not found in any segment: {keys[~found][:5].tolist()}")
        return out

    # ------------------------------------------------------------------ changing the list
    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Mask of `keys` that are live in some segment."""
        keys = np.asarray(keys, np.int64)
        mask = np.zeros(len(keys), bool)
        for seg in self.segments:
            mask |= _members(keys, seg.ids) & ~_members(keys, seg.dead)
        return mask

    def bury(self, keys: np.ndarray) -> dict[int, np.ndarray]:
        """Tombstone live `keys` in the committed segments they live in; the staged segment (file None)
        drops them for good. Returns segment position -> newly tombstoned ids (to persist)."""
        keys = np.unique(np.asarray(keys, np.int64))
        buried: dict[int, np.ndarray] = {}
        for pos, seg in enumerate(self.segments):
            hit = keys[_members(keys, seg.ids) & ~_members(keys, seg.dead)]
            if not len(hit):
                continue
            if seg.file is None:
                fi.remove(seg.index, hit)
                seg.ids = seg.ids[~_members(seg.ids, hit)]
            else:
                seg.dead = np.union1d(seg.dead, hit)
                buried[pos] = hit
        return buried

    def describe(self, factory: str) -> dict:
        """What collection.json says about the kind: the largest segment's type, live total, segment count."""
        biggest = max(self.segments, key=lambda s: s.index.ntotal, default=None)
        info = fi.describe(biggest.index, factory) if biggest is not None else {"factory": factory}
        info.update(ntotal=self.ntotal, segments=len([s for s in self.segments if s.index.ntotal]),
                    tombstones=sum(len(s.dead) for s in self.segments))
        info.setdefault("class", "IndexIDMap2")
        return info
