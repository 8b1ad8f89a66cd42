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

    python -m benchmarks segments
    BENCH_SEGMENTS_SIZES=10000,100000 python -m benchmarks segments     # a smaller run
"""

from __future__ import annotations

import os
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


def main() -> None:
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
    print("\nsearch, 100,000 speech vectors, 200 queries, top 10, ms per query")
    print(f"{'segments':>9} {'no filter':>10} {'10 % filter':>12}")
    base = None
    for parts, plain, filtered in search_cost():
        base = base or (plain, filtered)
        print(f"{parts:>9} {plain:>10.2f} {filtered:>12.2f}   ({plain / base[0]:.2f}x, {filtered / base[1]:.2f}x)")


if __name__ == "__main__":
    main()
