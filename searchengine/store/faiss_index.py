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

SELECTOR_MAX_FRACTION = 0.5
"""Filters keeping at most this share of the index search through an IDSelector; looser ones over-fetch."""


def nlist_for(n: int) -> int:
    """IVF list count: about 4*sqrt(n), as a power of two, the usual FAISS starting point."""
    return max(64, 1 << int(round(math.log2(max(4.0 * math.sqrt(max(n, 1)), 1.0)))))


def choose_factory(n: int, dim: int) -> str:
    """The index type for `n` vectors: exact up to `FLAT_MAX`, then IVF with an HNSW coarse quantizer."""
    if n <= FLAT_MAX:
        return "IDMap2,Flat"
    nlist = nlist_for(n)
    if n <= SQ8_MAX:
        return f"IVF{nlist}_HNSW32,SQ8"
    m = max(8, dim // 8)
    while dim % m:
        m -= 1
    return f"IVF{nlist}_HNSW32,PQ{m}x8"


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
    """The IVF layer of an index, or None for exact ones."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def num_gpus() -> int:
    """GPUs faiss can use here (0 with faiss-cpu)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


def train(index: faiss.Index, vectors: np.ndarray, default_nprobe: int = 32) -> None:
    """Train an IVF index (k-means on the GPU when faiss sees one; the index itself stays on CPU)."""
    ivf = ivf_of(index)
    if ivf is None or index.is_trained:
        return
    if num_gpus() > 0:  # pragma: no cover - needs faiss-gpu
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(index.d))
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
    selector_max_fraction: float = SELECTOR_MAX_FRACTION,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Top-`n` (scores, ids) of `index` among `allowed` ids (None: all), minus `excluded`.

    With few allowed ids the index gets an `IDSelectorBatch` and only scores those; with many it is
    asked for more than `n` and the rest is dropped, doubling until the page is full or the index is
    exhausted. Returns the strategy used as well: none (no filter), selector or overfetch.
    """
    total = int(index.ntotal)
    if total == 0 or n <= 0 or (allowed is not None and len(allowed) == 0):
        return np.zeros(0, np.float32), np.zeros(0, np.int64), "none" if allowed is None else "selector"
    q2 = np.ascontiguousarray(q.reshape(1, -1), dtype=np.float32)
    if allowed is not None and (
        strategy == "selector" or (strategy == "auto" and len(allowed) <= selector_max_fraction * total)
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
            mask &= np.isin(ids, keep, assume_unique=False)
        if excluded:
            mask &= ~np.isin(ids, np.fromiter(excluded, np.int64))
        scores, ids = scores[mask], ids[mask]
        if len(ids) >= n or want >= total:
            return scores[:n], ids[:n], "none" if allowed is None else "overfetch"
        want = min(total, want * 2)


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
        params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
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
