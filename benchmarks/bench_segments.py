"""Immutable segments (issue 38): what a commit costs as the collection grows, and what searching many
segments costs against one.

Collections of 10k, 100k and 1M clips are built with generated unit vectors at a collection's shape
(512-d; per clip one speech vector, one global caption and `BENCH_SEGMENTS_FINE` fine captions; the
model is not the point), each base written as one segment per kind and synced to disk. Then three
commits of 2,000 new clips of the same shape are timed (the median is reported), with the bytes the
process passed to write() during each (/proc/self/io wchar: segment files, DuckDB, collection.json).
The size of every index file a commit used to rewrite whole (the layout before segments) is printed
beside it.

Search: 100k speech vectors as 1 segment and split into 8 and 32, 200 queries top 10, unfiltered and
with a filter keeping 10 % of the ids, one query at a time through `faiss_index.search_ids` (what the
searcher calls); results are checked equal to the single segment's. Merge: `Collection.compact` of
the 100k collection after its commit.

Approximate segments: 100k clustered 512-d vectors (`bench_ondisk.clustered`, a stand-in for
embeddings; uniform random vectors have no structure an inverted index can use) as 1, 8 and 32
segments, each built by `faiss_index.checked_index` with the IVF type `choose_factory` picks past
`FLAT_MAX` (IVF<lists>_HNSW32,SQ8) at the segment's own size, lists capped so that k-means gets
`TRAIN_POINTS_PER_LIST` points per list, nprobe as the check chose it. Recall@10 of 500 held-out
queries (one at a time through `search_ids`) against exact search over all the vectors, and queries/s
beside Flat segments of the same split (taking turns in chunks, so drift hits both alike).

    python -m benchmarks segments
    BENCH_SEGMENTS_SIZES=10000,100000 python -m benchmarks segments     # a smaller run
    python -m benchmarks.bench_segments approximate                     # one part: commit, search, approximate
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from searchengine.store import Caption, Collection
from searchengine.store import faiss_index as fi
from searchengine.store.segments import Segment, SegmentedIndex

SIZES = [int(s) for s in os.environ.get("BENCH_SEGMENTS_SIZES", "10000,100000,1000000").split(",")]
FINE = int(os.environ.get("BENCH_SEGMENTS_FINE", "1"))
DIM = 512
COMMIT = 2000
REPEATS = 3
"""Commits timed per size (the median is reported); fewer than MERGE_FACTOR, so none merges."""
CHUNK = 50_000
APPROX_N = int(os.environ.get("BENCH_SEGMENTS_APPROX_N", "100000"))
APPROX_QUERIES = 500


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _batch(rng: np.random.Generator, n: int, offset: int) -> tuple[list[dict], np.ndarray, list[Caption], np.ndarray]:
    clips = [{"source_key": f"s{offset + i}", "source_path": f"/a/{offset + i}.wav", "duration": 4.0} for i in range(n)]
    caps = [Caption(i, "global", f"g{offset + i}") for i in range(n)]
    caps += [Caption(i, "fine", f"f{offset + i}.{j}") for j in range(FINE) for i in range(n)]
    return clips, _unit(rng, n), caps, _unit(rng, len(caps))


def _wchar() -> int:
    with open("/proc/self/io", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


def commit_cost(root: Path, n: int) -> dict:
    """Build an `n`-clip collection (one segment per kind), then time one commit of COMMIT clips."""
    rng = np.random.default_rng(n)
    coll = Collection.create(root, "bench@000000000000", DIM)
    with coll.transaction() as tx:
        for start in range(0, n, CHUNK):
            clips, speech, caps, cap_vecs = _batch(rng, min(CHUNK, n - start), start)
            tx.add(clips, speech, caps, cap_vecs)
    whole = sum(p.stat().st_size for p in root.glob("*.faiss"))
    os.sync()  # the base's gigabytes reach the disk first: the commit's own fsyncs are what is timed
    timed = []
    for rep in range(REPEATS):
        clips, speech, caps, cap_vecs = _batch(rng, COMMIT, n + rep * COMMIT)
        tx = coll.begin()
        tx.add(clips, speech, caps, cap_vecs)
        before, t0 = _wchar(), time.perf_counter()
        tx.commit()
        timed.append((time.perf_counter() - t0, _wchar() - before))
    seconds, written = sorted(timed)[len(timed) // 2]
    merge = None
    if n == 100_000:
        t0 = time.perf_counter()
        coll.compact()
        merge = (n + REPEATS * COMMIT) * (2 + FINE) / (time.perf_counter() - t0)
    coll.close()
    return {"n": n, "seconds": seconds, "written": written, "whole": whole, "merge": merge}


def search_cost(n: int = 100_000, queries: int = 200) -> list[tuple[int, float, float]]:
    """Per-query ms (unfiltered, 10 % filter) over `n` vectors in 1, 8 and 32 segments."""
    rng = np.random.default_rng(1)
    vecs, ids = _unit(rng, n), np.arange(1, n + 1, dtype=np.int64)
    qs = _unit(rng, queries)
    allowed = np.sort(rng.choice(ids, n // 10, replace=False))
    out, truth = [], None
    for parts in (1, 8, 32):
        segs = []
        for chunk_ids, chunk in zip(np.array_split(ids, parts), np.array_split(vecs, parts), strict=True):
            index = fi.new_index("Flat", DIM)
            fi.add(index, chunk, chunk_ids)
            segs.append(Segment(index, f"s{len(segs)}"))
        seg = SegmentedIndex(DIM, segs)
        times = []
        for filt in (None, allowed):
            got, t0 = [], time.perf_counter()
            for q in qs:
                got.append(fi.search_ids(seg, q, 10, filt)[1].tolist())
            times.append((time.perf_counter() - t0) / queries * 1000)
            if parts == 1:
                truth = (truth or []) + [got]
            elif got != truth[0 if filt is None else 1]:
                raise AssertionError(f"{parts} segments answered differently from one")
        out.append((parts, *times))
    return out


def segment_factory(n: int) -> str:
    """The approximate type for a segment of `n` vectors: `choose_factory`'s IVF family (what a segment
    past FLAT_MAX gets), its list count halved until k-means has TRAIN_POINTS_PER_LIST points a list."""
    nlist = fi.nlist_for(n)
    while nlist > 1 and fi.TRAIN_POINTS_PER_LIST * nlist > n:
        nlist //= 2
    return f"IVF{nlist}_HNSW32,SQ8"


def _turns(indexes: list[SegmentedIndex], queries: np.ndarray, chunk: int = 50) -> tuple[list[float], list[np.ndarray]]:
    """Queries/s of each index, one query at a time through `search_ids`, taking turns chunk by chunk;
    and each one's top-10 ids [Q, 10] (-1 where fewer)."""
    spent = [0.0] * len(indexes)
    found = [np.full((len(queries), 10), -1, np.int64) for _ in indexes]
    for start in range(0, len(queries), chunk):
        for side, index in enumerate(indexes):
            t0 = time.perf_counter()
            for row in range(start, min(start + chunk, len(queries))):
                ids = fi.search_ids(index, queries[row], 10, None)[1]
                found[side][row, :len(ids)] = ids
            spent[side] += time.perf_counter() - t0
    return [len(queries) / t for t in spent], found


def approximate_cost(n: int = APPROX_N, queries: int = APPROX_QUERIES) -> list[dict]:
    """Recall@10 against exact search and queries/s of IVF segments (1, 8, 32) beside Flat ones."""
    import faiss

    from benchmarks.bench_ondisk import clustered, unit

    centres = unit(max(64, n // 500), 32, 1) * 2.0
    vecs, qs = clustered(n, centres, 2), clustered(queries, centres, 3)
    ids = np.arange(1, n + 1, dtype=np.int64)
    _, rows = faiss.knn(qs, vecs, 10, metric=faiss.METRIC_INNER_PRODUCT)
    truth = ids[rows]
    out = []
    for parts in (1, 8, 32):
        exact, approx, nprobes, declined, factories = [], [], [], 0, set()
        t0 = time.perf_counter()
        for chunk_ids, chunk in zip(np.array_split(ids, parts), np.array_split(vecs, parts), strict=True):
            factory = segment_factory(len(chunk))
            index, choice = fi.checked_index(factory, chunk, chunk_ids, DIM)
            if "nprobe" in choice:
                nprobes.append(choice["nprobe"])
                factories.add(factory)
            else:
                declined += 1
            approx.append(Segment(index, f"a{len(approx)}"))
        built = time.perf_counter() - t0
        for chunk_ids, chunk in zip(np.array_split(ids, parts), np.array_split(vecs, parts), strict=True):
            flat = fi.new_index("Flat", DIM)
            fi.add(flat, chunk, chunk_ids)
            exact.append(Segment(flat, f"e{len(exact)}"))
        (exact_qps, approx_qps), (exact_found, approx_found) = _turns(
            [SegmentedIndex(DIM, exact), SegmentedIndex(DIM, approx)], qs)

        def recall(found: np.ndarray) -> float:
            return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]))

        out.append({"parts": parts, "factories": sorted(factories), "nprobe": (min(nprobes, default=0), max(nprobes, default=0)),
                    "declined": declined, "build_s": built, "recall": recall(approx_found),
                    "exact_recall": recall(exact_found), "approx_qps": approx_qps, "exact_qps": exact_qps})
        print(f"  {parts} segment(s) built in {built:.1f} s", flush=True)
    return out


def main(parts: list[str] | None = None) -> None:
    """Every part, or those named: commit, search, approximate."""
    parts = parts or ["commit", "search", "approximate"]
    if "commit" in parts:
        commit_table()
    if "search" in parts:
        search_table()
    if "approximate" in parts:
        approximate_table()


def approximate_table() -> None:
    print(f"\napproximate segments: {APPROX_N:,} clustered {DIM}-d vectors, {APPROX_QUERIES} held-out queries, top 10,"
          " one query at a time")
    rows = approximate_cost()
    print(f"{'segments':>9} {'factory per segment':>24} {'nprobe':>8} {'flat kept':>9} {'recall@10':>10}"
          f" {'approx q/s':>11} {'exact q/s':>10} {'build s':>8}")
    for r in rows:
        lo, hi = r["nprobe"]
        print(f"{r['parts']:>9} {'/'.join(r['factories']) or '-':>24} {f'{lo}-{hi}' if lo != hi else lo:>8}"
              f" {r['declined']:>9} {r['recall']:>10.3f} {r['approx_qps']:>11.0f} {r['exact_qps']:>10.0f} {r['build_s']:>8.1f}"
              f"   (exact segments' recall {r['exact_recall']:.3f})")


def commit_table() -> None:
    print(f"commit of {COMMIT:,} clips (512-d; per clip 1 speech, 1 global, {FINE} fine vectors)")
    print(f"{'clips':>10} {'commit s':>9} {'MB written':>11} {'x 10k time':>11} {'old layout rewrote MB':>22}")
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for n in SIZES:
            r = commit_cost(Path(tmp) / f"c{n}", n)
            rows.append(r)
            print(f"{n:>10,} {r['seconds']:>9.3f} {r['written'] / 1e6:>11.1f} {r['seconds'] / rows[0]['seconds']:>11.2f}"
                  f" {r['whole'] / 1e6:>22.0f}", flush=True)
    for r in rows:
        if r["merge"]:
            print(f"merge (compact) of {r['n'] + REPEATS * COMMIT:,} clips: {r['merge']:,.0f} vectors/s")


def search_table() -> None:
    print("\nsearch, 100,000 speech vectors, 200 queries, top 10, ms per query")
    print(f"{'segments':>9} {'no filter':>10} {'10 % filter':>12}")
    base = None
    for parts, plain, filtered in search_cost():
        base = base or (plain, filtered)
        print(f"{parts:>9} {plain:>10.2f} {filtered:>12.2f}   ({plain / base[0]:.2f}x, {filtered / base[1]:.2f}x)")


if __name__ == "__main__":
    main(sys.argv[1:])
