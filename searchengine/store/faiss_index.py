"""FAISS indexes for a collection: choosing a type by size, building, persisting atomically.

Plain functions over arrays in the spirit of faiss.contrib: the Collection owns the indexes, these
functions only make, grow, convert and save them. Every index is inner product over L2-normalised
vectors and answers with the collection's own int64 ids (clips.id / captions.id), so a search hit
can go straight to DuckDB.

Searching with a filter lives here too (`search_ids`, `search_groups`): which ids may answer is
decided by the caller (DuckDB), how FAISS is made to return only those is decided here.

Two families are used:
- exact `IDMap2,Flat` (ids held by the IDMap2 wrapper; removal renumbers the flat array, which is
  exactly what IndexIDMap2.remove_ids expects);
- `IVF..._HNSW32,SQ8|PQ..` for large collections. IVF keeps ids itself, and a hashtable direct map
  gives `reconstruct(id)` and `remove_ids`; wrapping it in IndexIDMap2 would break on removal,
  because IVF does not renumber the way the wrapper assumes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

BLAS_THRESHOLD = 3 * 512
"""FAISS scans a batch of queries exactly with its own loops until the batch holds `nx * d >=
distance_compute_blas_threshold` numbers, then as one BLAS matrix product. FAISS 1.15 sets that to
128,000 (250 queries of 512 dims); on 2 cores BLAS won from 3 such queries (1.1-1.7x at 3, 1.8-2.8x at
8, 5.8-12.5x at 64, 12x for batches of 100 over a million vectors) and lost at 2 (0.5-0.8x):
benchmarks/RESULTS.md, "Index type at a million vectors". Set when this module is imported; one
query at a time (the server's searches) and searches with an ID selector (always FAISS's loops) are
unaffected. Tuned for clsp's 512 dims; the rule counts numbers, so wider models reach it from 2 queries."""
faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD

FLAT_MAX = 1_000_000
"""Up to this many vectors an exact scan is fast enough (a few ms per query per core-GB) and exact."""

SQ8_MAX = 10_000_000
"""Up to this many vectors, 8-bit scalar quantisation (4x smaller, recall close to exact) fits in RAM."""

TRAIN_POINTS_PER_LIST = 40
"""k-means wants at least ~39 points per centroid; with fewer, an IVF index is not built yet."""

ONE_THREAD_MAX_COMPONENTS = 50_000_000
"""An exact scan of fewer vector components than this (ntotal x dim: about 100k clips at 512-d) runs on
the calling thread alone. Starting and joining an OpenMP team costs more than such a scan, and on a
busy machine (a server answering several requests, each on its own thread) it costs milliseconds:
4 ms against 0.07 ms for one query on 500 vectors, measured on 2 loaded cores."""

EXACT_AMONG_MAX = 2_000
"""A filter keeping at most this many ids of an IVF index is answered exactly over their stored vectors
(decoding them costs about 3 us an id, 6 ms at the limit): it misses nothing, where probing lists for a
few scattered ids can."""

SELECTOR_MAX_FRACTION = 0.5
"""Filters keeping at most this share of an exact index search through an IDSelector; looser ones over-fetch."""

IVF_SELECTOR_MAX_FRACTION = 0.02
"""The same for IVF indexes. Over-fetching `nprobe` lists kept recall@10 >= 0.975 down to 5 % and ran
6-20x faster than a selector (which also probes more lists): 300k vectors, 2026-12-06."""


def _selector_max(index: faiss.Index, given: float | None) -> float:
    if given is not None:
        return given
    return SELECTOR_MAX_FRACTION if ivf_of(index) is None else IVF_SELECTOR_MAX_FRACTION


def nlist_for(n: int) -> int:
    """IVF list count: about 4*sqrt(n), as a power of two, the usual FAISS starting point."""
    return max(64, 1 << int(round(math.log2(max(4.0 * math.sqrt(max(n, 1)), 1.0)))))


def choose_factory(n: int, dim: int) -> str:
    """The index type for `n` vectors: exact up to `FLAT_MAX`, then `approximate_factory`."""
    return "IDMap2,Flat" if n <= FLAT_MAX else approximate_factory(n, dim)


def approximate_factory(n: int, dim: int) -> str:
    """The approximate type for `n` vectors: IVF with an HNSW coarse quantizer, lists from `nlist_for`,
    codes in 8-bit scalar quantisation up to `SQ8_MAX`, product quantisation beyond."""
    nlist = nlist_for(n)
    if n <= SQ8_MAX:
        return f"IVF{nlist}_HNSW32,SQ8"
    m = max(8, dim // 8)
    while dim % m:
        m -= 1
    return f"IVF{nlist}_HNSW32,PQ{m}x8"


RECALL_TARGET = 0.95
"""Recall@10 against exact search an approximate index must reach on a sample before it replaces Flat."""

RECALL_QUERIES = 500
"""Vectors of the collection used as queries by that check (their own match left out)."""

NPROBE_STEPS = (16, 32, 64, 128, 256)
"""IVF lists probed per query, tried in turn until the sample reaches `RECALL_TARGET`."""


def exact_neighbours(vectors: np.ndarray, ids: np.ndarray, query_rows: np.ndarray, k: int,
                     chunk: int = 100_000) -> np.ndarray:
    """Ids of the `k` best inner products of `vectors[query_rows]` among `vectors`, each query's own row
    left out: the truth an approximate index is checked against (chunked, so a million vectors need
    no second copy)."""
    queries = np.ascontiguousarray(vectors[query_rows], dtype=np.float32)
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_rows = np.full((len(queries), k), -1, np.int64)
    for start in range(0, len(vectors), chunk):
        block = vectors[start:start + chunk]
        scores = queries @ block.T
        own = (query_rows >= start) & (query_rows < start + len(block))
        scores[np.nonzero(own)[0], query_rows[own] - start] = -np.inf
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, np.arange(start, start + len(block))[None].repeat(len(queries), 0)], axis=1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_rows = np.take_along_axis(rows, top, axis=1)
    return ids[best_rows]


def recall_at_k(index: faiss.Index, queries: np.ndarray, own_ids: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true `k` neighbours (`truth`, own ids excluded) that `index` returns in its top `k`."""
    k = truth.shape[1]
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k + 1)
    hits = 0
    for own, row, true in zip(own_ids, found, truth, strict=True):
        hits += len(set(row[row != own][:k].tolist()) & set(true.tolist()))
    return hits / truth.size


def checked_index(factory: str, vectors: np.ndarray, ids: np.ndarray, dim: int, seed: int = 0) -> tuple[faiss.Index, dict]:
    """An index of type `factory` over (vectors, ids), and what was decided and why.

    An exact factory is built as asked. An approximate one is trained and filled, then checked: the
    recall@10 of `RECALL_QUERIES` of the vectors (their own match left out) against exact search, at
    each nprobe of `NPROBE_STEPS` until it reaches `RECALL_TARGET`. If none does (vectors without the
    cluster structure IVF relies on), an exact `IDMap2,Flat` is returned instead: slower, never wrong.
    """
    index = new_index(factory, dim)
    if ivf_of(index) is None:
        add(index, vectors, ids)
        return index, {"factory": factory, "reason": "exact search"}
    train(index, vectors)
    add(index, vectors, ids)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors), size=min(RECALL_QUERIES, len(vectors)), replace=False))
    truth = exact_neighbours(vectors, ids, rows, 10)
    ivf = ivf_of(index)
    tried: list[str] = []
    for nprobe in NPROBE_STEPS:
        ivf.nprobe = min(nprobe, ivf.nlist)
        recall = recall_at_k(index, vectors[rows], ids[rows], truth)
        tried.append(f"{recall:.3f} at nprobe {ivf.nprobe}")
        if recall >= RECALL_TARGET:
            return index, {"factory": factory, "nprobe": int(ivf.nprobe), "recall_at_10": round(recall, 4),
                           "reason": f"{len(vectors):,} vectors: recall@10 {recall:.3f} >= {RECALL_TARGET} on "
                                     f"{len(rows)} sample queries at nprobe {ivf.nprobe}"}
    exact = new_index("IDMap2,Flat", dim)
    add(exact, vectors, ids)
    return exact, {"factory": "IDMap2,Flat", "declined": factory, "declined_at": int(len(vectors)),
                   "reason": f"{factory} kept too few neighbours ({', '.join(tried)}; need {RECALL_TARGET}): "
                             "exact search kept"}


def family(factory: str) -> str:
    """Coarse type of a factory string: 'flat', or the IVF variant with its list count stripped."""
    if "IVF" not in factory:
        return "flat"
    tail = factory.split(",", 1)[1] if "," in factory else ""
    return "ivf:" + tail


def new_index(factory: str, dim: int) -> faiss.Index:
    """An empty inner-product index from a factory string (an `IDMap2,` prefix is added to non-IVF types)."""
    if "IVF" not in factory and not factory.startswith("IDMap"):
        factory = "IDMap2," + factory
    return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)


def min_train_size(factory: str) -> int:
    """How many vectors `factory` needs before it can be trained (0 for exact indexes)."""
    if "IVF" not in factory:
        return 0
    head = factory.split(",", 1)[0]
    digits = "".join(ch for ch in head[3:] if ch.isdigit() or ch == "_").split("_")[0]
    return TRAIN_POINTS_PER_LIST * int(digits or 1)


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF layer of an index, or None for exact ones (and for a segmented index, whose segments
    each have their own)."""
    if hasattr(index, "segments"):
        return None
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def num_gpus() -> int:
    """GPUs faiss can use here (0 with faiss-cpu)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


TRAIN_MAX_PER_LIST = 64
"""k-means sees at most this many vectors per list (a random sample): FAISS's guidance is 30-256, and
training on all of a million vectors took four times as long as on 262,144 for the same lists."""


def train(index: faiss.Index, vectors: np.ndarray, default_nprobe: int = 32, seed: int = 0) -> None:
    """Train an IVF index (k-means on the GPU when faiss sees one; the index itself stays on CPU)."""
    ivf = ivf_of(index)
    if ivf is None or index.is_trained:
        return
    if num_gpus() > 0:  # pragma: no cover - needs faiss-gpu
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(index.d))
    most = TRAIN_MAX_PER_LIST * ivf.nlist
    if len(vectors) > most:
        vectors = vectors[np.sort(np.random.default_rng(seed).choice(len(vectors), most, replace=False))]
    index.train(np.ascontiguousarray(vectors, dtype=np.float32))
    ivf.nprobe = default_nprobe
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)


def add(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Add vectors under the given ids (the index must be trained)."""
    if len(ids) == 0:
        return
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))


def remove(index: faiss.Index, ids: np.ndarray) -> int:
    """Remove ids; returns how many were present."""
    if len(ids) == 0 or index.ntotal == 0:
        return 0
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    # IDSelectorArray, not IDSelectorBatch: IVF's hashtable direct map only accepts the array form.
    return int(index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))))


def ids_and_vectors(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """Every (id, vector) in the index. Exact for Flat; the decoded approximation for SQ/PQ."""
    if hasattr(index, "segments"):
        return index.ids_and_vectors()
    n = index.ntotal
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, index.d), np.float32)
    ivf = ivf_of(index)
    if ivf is None:
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        return ids, index.index.reconstruct_n(0, n)
    invlists = ivf.invlists
    parts = [
        faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
        for i in range(ivf.nlist)
        if invlists.list_size(i)
    ]
    ids = np.concatenate(parts).astype(np.int64)
    # One C++ call through the direct map (10x faster than a Python loop of reconstruct(id)).
    return ids, np.ascontiguousarray(ivf.reconstruct_batch(ids), dtype=np.float32)


def rebuild(index: faiss.Index, factory: str, dim: int) -> faiss.Index:
    """A new index of type `factory` holding the same (id, vector) pairs (training on them if needed)."""
    ids, vectors = ids_and_vectors(index)
    out = new_index(factory, dim)
    train(out, vectors)
    add(out, vectors, ids)
    return out


def describe(index: faiss.Index, factory: str) -> dict:
    """What collection.json says about an index: type, size, search parameters."""
    ivf = ivf_of(index)
    info: dict = {"factory": factory, "ntotal": int(index.ntotal), "class": type(index).__name__}
    if ivf is not None:
        info.update(nlist=int(ivf.nlist), nprobe=int(ivf.nprobe))
    return info


def to_cpu(index: faiss.Index) -> faiss.Index:
    """A CPU copy when the index lives on a GPU, so saved files load on any machine."""
    if num_gpus() > 0 and hasattr(faiss, "index_gpu_to_cpu"):  # pragma: no cover - needs faiss-gpu
        try:
            return faiss.index_gpu_to_cpu(index)
        except RuntimeError:
            return index
    return index


def write(index: faiss.Index, path: str | os.PathLike) -> None:
    """Serialise to `path` and fsync it: the bytes are on disk before anyone renames the file."""
    faiss.write_index(to_cpu(index), str(path))
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str | os.PathLike, mmap: bool = False) -> faiss.Index:
    """Load an index; `mmap=True` maps IVF lists from disk instead of reading them into RAM."""
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    return faiss.read_index(str(Path(path)), flags)


# ------------------------------------------------------------------------------------ filtered search
@contextmanager
def query_threads(index: faiss.Index) -> Iterator[None]:
    """One OpenMP thread for this thread's searches of a small exact index, the default otherwise.
    FAISS's thread count is per calling thread, so concurrent requests do not affect each other."""
    if ivf_of(index) is not None or index.ntotal * index.d >= ONE_THREAD_MAX_COMPONENTS:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search_ids(
    index: faiss.Index,
    q: np.ndarray,
    n: int,
    allowed: np.ndarray | None,
    excluded: set[int] | frozenset[int] = frozenset(),
    strategy: str = "auto",
    selector_max_fraction: float | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Top-`n` (scores, ids) of `index` among `allowed` ids (None: all), minus `excluded`.

    With few allowed ids the index gets an `IDSelectorBatch` and only scores those; with many it is
    asked for more than `n` and the rest is dropped, doubling until the page is full or the index is
    exhausted. A filter keeping few ids of an IVF index is scored exactly over those ids' vectors.
    Returns the strategy used as well: none (no filter), exact, selector or overfetch. A segmented
    index (`segments.SegmentedIndex`) answers itself, segment by segment.
    """
    if hasattr(index, "segments"):
        return index.search_ids(q, n, allowed, excluded, strategy, selector_max_fraction)
    total = int(index.ntotal)
    if total == 0 or n <= 0 or (allowed is not None and len(allowed) == 0):
        return np.zeros(0, np.float32), np.zeros(0, np.int64), "none" if allowed is None else "selector"
    q2 = np.ascontiguousarray(q.reshape(1, -1), dtype=np.float32)
    if allowed is not None and (strategy == "exact" or (
            strategy == "auto" and ivf_of(index) is not None and len(allowed) <= EXACT_AMONG_MAX)):
        keep = allowed[~np.isin(allowed, np.fromiter(excluded, np.int64))] if excluded else allowed
        return (*search_among(index, q2, n, keep), "exact")
    if allowed is not None and (
        strategy == "selector" or (strategy == "auto" and len(allowed) <= _selector_max(index, selector_max_fraction) * total)
    ):
        with query_threads(index):
            return (*search_with_selector(index, q2, min(n, len(allowed)), allowed), "selector")

    keep = None if allowed is None else allowed
    fraction = 1.0 if keep is None else max(len(keep) / total, 1e-6)
    want = min(total, int(math.ceil((n + len(excluded)) / fraction * 1.1)) + 1)
    while True:
        with query_threads(index):
            scores, ids = index.search(q2, want)
        scores, ids = scores[0], ids[0]
        mask = ids >= 0
        if keep is not None:
            mask &= _members(ids, keep)
        if excluded:
            mask &= ~np.isin(ids, np.fromiter(excluded, np.int64))
        scores, ids = scores[mask], ids[mask]
        if len(ids) >= n or want >= total:
            return scores[:n], ids[:n], "none" if allowed is None else "overfetch"
        want = min(total, want * 2)


def _members(ids: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Which of a few found ids are in `allowed`, by binary search when `allowed` is sorted (a filter's
    ids come ORDER BY id): `np.isin` would sort half a million allowed ids for twenty found ones."""
    if len(allowed) > 1 and allowed[0] <= allowed[-1] and np.all(allowed[1:] > allowed[:-1]):
        at = np.minimum(np.searchsorted(allowed, ids), len(allowed) - 1)
        return allowed[at] == ids
    return np.isin(ids, allowed)


def search_among(index: faiss.Index, q2: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` (scores, ids) of one query [1, d] scored against the stored vectors of `allowed` alone:
    exact over them (decoded codes for a quantised index), whatever lists a probe would visit."""
    ids = np.ascontiguousarray(allowed, dtype=np.int64)
    if not len(ids):
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores = reconstruct(index, ids) @ q2[0]
    top = np.argpartition(-scores, k - 1)[:k] if len(ids) > k else np.arange(len(ids))
    top = top[np.lexsort((ids[top], -scores[top]))]
    return scores[top].astype(np.float32), ids[top]


def reconstruct(index: faiss.Index, ids: np.ndarray) -> np.ndarray:
    """Stored vectors [len(ids), d] by id (decoded for quantised indexes)."""
    if hasattr(index, "segments"):
        return index.reconstruct_batch(ids)
    ivf = ivf_of(index)
    if ivf is not None:
        return np.ascontiguousarray(ivf.reconstruct_batch(ids), dtype=np.float32)
    return np.vstack([index.reconstruct(int(i)) for i in ids]).astype(np.float32)


def _probe_params(ivf: faiss.IndexIVF, selector: faiss.IDSelector, nprobe: int) -> faiss.SearchParametersIVF:
    """IVF search parameters probing `nprobe` lists. An HNSW coarse quantizer returns only about
    efSearch lists however many are asked for, so its efSearch is raised to match."""
    params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
    if isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW):
        params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(nprobe, 16))
    return params


def search_with_selector(index: faiss.Index, q2: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` (scores, ids) of one query [1, d] scoring only the `allowed` ids (an `IDSelectorBatch`)."""
    ids = np.ascontiguousarray(allowed, dtype=np.int64)
    selector = faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))
    ivf = ivf_of(index)
    if ivf is None:
        params = faiss.SearchParameters(sel=selector)
    else:
        # Only `nprobe` lists are scanned: with a selective filter most of them hold no allowed id, so
        # probe proportionally more lists to find the same number of neighbours.
        fraction = len(ids) / max(1, index.ntotal)
        nprobe = min(ivf.nlist, max(ivf.nprobe, int(math.ceil(ivf.nprobe / max(fraction, 1e-6)))))
        params = _probe_params(ivf, selector, nprobe)
    scores, found = index.search(q2, k, params=params)
    mask = found[0] >= 0
    return scores[0][mask], found[0][mask]


def search_groups(
    index: faiss.Index,
    q: np.ndarray,
    n: int,
    group_of: Callable[[np.ndarray], Mapping[int, int]],
    allowed: np.ndarray | None = None,
    excluded: set[int] | frozenset[int] = frozenset(),
    strategy: str = "auto",
    per_group: float = 1.0,
) -> tuple[dict[int, tuple[float, int]], str]:
    """Top-`n` groups of an index whose vectors belong to groups (captions of clips): each group's best
    (score, vector id), best group first, plus the strategy used.

    `group_of` maps found vector ids to group ids (ids it leaves out belong to no group and are
    skipped); `allowed` filters vector ids, `excluded` filters groups. A group may own several vectors,
    so about `n * per_group` vectors are asked for, doubling until `n` distinct groups are found or
    the index is exhausted.
    """
    want = int(math.ceil(n * per_group))
    while True:
        scores, ids, used = search_ids(index, q, want, allowed, set(), strategy)
        owners = group_of(ids)
        best: dict[int, tuple[float, int]] = {}
        for s, vid in zip(scores, ids, strict=False):
            group = owners.get(int(vid))
            if group is None or group in excluded or group in best:
                continue
            best[group] = (float(s), int(vid))
        exhausted = len(ids) < want or want >= index.ntotal
        if len(best) >= n or exhausted:
            return dict(list(best.items())[:n]), used
        want = min(index.ntotal, want * 2)
