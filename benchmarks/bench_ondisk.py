"""Serving a collection larger than RAM: IVF-PQ with on-disk inverted lists, and sharded indexes.

What it measures, on clustered unit 512-d vectors (a stand-in for embeddings, which cluster by voice
and style; uniformly random vectors would understate IVF recall):

1. Exact search (the reference): recall 1.0, 2 KB of RAM per vector.
2. IVF-PQ built the way a large collection is built: train once, fill shard files independently
   (on any number of machines), merge them into one `.ivfdata` file with `faiss.contrib.ondisk`
   (`OnDiskInvertedLists`), then serve it memory-mapped. The loading and searching happen in a fresh
   child process so its memory figures are its own: anonymous memory (what the index really costs;
   the OS cannot reclaim it) is reported apart from the file-backed pages of the mapping (page cache
   the kernel evicts under pressure). The same index loaded fully into RAM is measured alongside.
3. Recall@10 against exact search, and queries per second, for several nprobe.
4. Sharded serving: the same vectors split over shards (one per machine in a deployment), searched
   with `faiss.IndexShards` and, the way a front end would merge answers from remote shards, with
   `faiss.ResultHeap` over per-shard results. Both must equal the single index's answers.

    python -m benchmarks ondisk                       # defaults: 1 M vectors
    python -m benchmarks.bench_ondisk --n 200000      # smaller
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.ondisk import merge_ondisk

DIM = 512
K = 10


def clustered(n: int, centres: np.ndarray, seed: int, latent: int = 32, noise: float = 0.05,
              block: int = 100_000) -> np.ndarray:
    """`n` unit vectors around `centres` with a low intrinsic dimension, like real embeddings.

    Points are drawn in a `latent`-dimensional space (a cluster centre plus spread), mapped to 512-d
    by one fixed random matrix and given a little isotropic `noise`. Isotropic noise alone would make
    every in-cluster distance nearly equal (distances concentrate in high dimension) and nearest
    neighbours meaningless, which real speech/text embeddings are not."""
    rng = np.random.default_rng(seed)
    lift = np.random.default_rng(0).standard_normal((latent, DIM), dtype=np.float32) / np.sqrt(latent)
    out = np.empty((n, DIM), np.float32)
    for a in range(0, n, block):  # blocks keep the peak at the output array
        m = min(n, a + block) - a
        z = centres[rng.integers(0, len(centres), m)] + 0.5 * rng.standard_normal((m, latent), dtype=np.float32)
        x = z @ lift + rng.standard_normal((m, DIM), dtype=np.float32) * (noise / np.sqrt(DIM))
        out[a : a + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Share of the true top-k found in the returned top-k, averaged over queries."""
    return float(np.mean([len(set(f[:k]) & set(t[:k]) - {-1}) / k for f, t in zip(found, truth, strict=True)]))


def build_ondisk(xb: np.ndarray, factory: str, train_n: int, shards: int, workdir: Path) -> dict[str, float]:
    """Train, fill `shards` shard files independently, merge them into one on-disk index.

    Each shard file could be written by a different machine: they only share the trained (empty)
    index. Returns the time of each step."""
    times: dict[str, float] = {}
    index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(5)
    sample = xb[np.sort(rng.choice(len(xb), min(train_n, len(xb)), replace=False))]
    ivf = faiss.extract_index_ivf(index)
    if hasattr(ivf, "pq"):  # 64 points per code and 10 iterations train PQ codebooks as well as the
        ivf.pq.cp.max_points_per_centroid = 64  # defaults on these vectors, in a fraction of the time
        ivf.pq.cp.niter = 10
    t = time.perf_counter()
    index.train(sample)
    times["train"] = time.perf_counter() - t
    faiss.write_index(index, str(workdir / "trained.index"))
    t = time.perf_counter()
    bounds = np.linspace(0, len(xb), shards + 1).astype(int)
    names = []
    for s in range(shards):
        shard = faiss.read_index(str(workdir / "trained.index"))
        shard.add_with_ids(xb[bounds[s] : bounds[s + 1]], np.arange(bounds[s], bounds[s + 1], dtype=np.int64))
        names.append(str(workdir / f"shard{s}.index"))
        faiss.write_index(shard, names[-1])
        del shard
    times["fill shards"] = time.perf_counter() - t
    t = time.perf_counter()
    merged = faiss.read_index(str(workdir / "trained.index"))
    merge_ondisk(merged, names, str(workdir / "merged.ivfdata"))
    faiss.write_index(merged, str(workdir / "populated.index"))
    times["merge on disk"] = time.perf_counter() - t
    # The same lists fully in RAM, for comparison: merged from the shard files, nothing re-encoded.
    inram = faiss.read_index(str(workdir / "trained.index"))
    for name in names:
        inram.merge_from(faiss.read_index(name), 0)
    faiss.write_index(inram, str(workdir / "inram.index"))
    # Full vectors in float16 on disk, for exact re-ranking of the PQ candidates (1 KB per vector).
    np.lib.format.open_memmap(workdir / "vectors.f16.npy", "w+", np.float16, xb.shape)[:] = xb
    return times


# Runs in a fresh interpreter so that RSS reflects only the loaded index and the search.
_CHILD = r"""
import json, sys, time
import faiss, numpy as np

def mem():
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "RssAnon", "RssFile")):
            key, value = line.split(":")
            out[key] = int(value.split()[0]) * 1024
    return out

path, mode, queries, nprobes, threads, out, vectors, rerank = sys.argv[1:9]
faiss.omp_set_num_threads(int(threads))
xq = np.load(queries)
before = mem()
flags = faiss.IO_FLAG_ONDISK_SAME_DIR if mode == "ondisk" else 0
base = np.load(vectors, mmap_mode="r")  # float16 rows read from disk only for the candidates
t = time.perf_counter()
index = faiss.read_index(path, flags)
load_s = time.perf_counter() - t
loaded = mem()
ivf = faiss.extract_index_ivf(index)
rows = []
for nprobe in [int(p) for p in nprobes.split(",")]:
    ivf.nprobe = nprobe
    index.search(xq[:50], 10)  # touch the lists once: warm-cache figures, as a running server sees
    t = time.perf_counter()
    _, ids = index.search(xq, 10)
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    _, cand = index.search(xq, int(rerank))
    order = np.argsort(cand, axis=1)  # sorted row reads are kinder to the disk
    flat = np.take_along_axis(cand, order, 1)
    vecs = base[np.maximum(flat, 0).ravel()].reshape(len(xq), -1, xq.shape[1]).astype(np.float32)
    scores = np.einsum("qkd,qd->qk", vecs, xq)
    scores[flat < 0] = -np.inf  # fewer candidates than asked for
    top = np.argsort(-scores, axis=1)[:, :10]
    reranked = np.take_along_axis(flat, top, 1)
    rows.append({"nprobe": nprobe, "seconds": seconds, "ids": ids.tolist(),
                 "rerank_seconds": time.perf_counter() - t, "rerank_ids": reranked.tolist()})
after = mem()
json.dump({"before": before, "loaded": loaded, "after": after, "load_s": load_s, "rows": rows,
           "invlists": type(faiss.downcast_InvertedLists(ivf.invlists)).__name__}, open(out, "w"))
"""


def serve_in_child(path: Path, mode: str, xq: np.ndarray, nprobes: list[int], workdir: Path, rerank: int) -> dict:
    """Load `path` in a fresh process ('ondisk': memory-mapped lists; 'ram': read fully) and search,
    also re-ranking the top `rerank` PQ candidates with exact scores from the float16 vectors on disk."""
    queries = workdir / "queries.npy"
    np.save(queries, xq)
    out = workdir / f"child-{mode}.json"
    threads = str(faiss.omp_get_max_threads())
    subprocess.run([sys.executable, "-c", _CHILD, str(path), mode, str(queries), ",".join(map(str, nprobes)), threads,
                    str(out), str(workdir / "vectors.f16.npy"), str(rerank)], check=True)
    return json.loads(out.read_text())


def sharded(xq: np.ndarray, workdir: Path, shards: int, nprobe: int) -> dict[str, float]:
    """Serve the shard files `build_ondisk` wrote as separate indexes (one per machine in a
    deployment) and check that both ways of merging their answers give exactly what the single
    index over everything gives."""
    parts = [faiss.read_index(str(workdir / f"shard{s}.index")) for s in range(shards)]
    whole = faiss.read_index(str(workdir / "inram.index"))
    for index in (*parts, whole):
        faiss.extract_index_ivf(index).nprobe = nprobe
    t = time.perf_counter()
    d_one, i_one = whole.search(xq, K)
    t_one = time.perf_counter() - t

    shard_index = faiss.IndexShards(DIM, True, False)  # threaded, ids kept as added
    for part in parts:
        shard_index.add_shard(part)
    t = time.perf_counter()
    d_sh, i_sh = shard_index.search(xq, K)
    t_sh = time.perf_counter() - t

    # What a front end does with answers from remote shards: keep the best k of all of them.
    heap = faiss.ResultHeap(len(xq), K, keep_max=True)  # inner product: larger is better
    for part in parts:
        d, i = part.search(xq, K)
        heap.add_result(d, i)
    heap.finalize()
    return {
        "shards": shards,
        "qps_single": len(xq) / t_one,
        "qps_shards": len(xq) / t_sh,
        "same_ids_indexshards": float(np.mean(np.sort(i_sh, 1) == np.sort(i_one, 1))),
        "same_ids_resultheap": float(np.mean(np.sort(heap.I, 1) == np.sort(i_one, 1))),
        "max_score_diff": float(max(np.abs(d_sh - d_one).max(), np.abs(heap.D - d_one).max())),
    }


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()}, faiss {faiss.__version__}"


def run(n: int, queries: int, nlist: int, pq_m: int, shards: int, nprobes: list[int], workdir: Path) -> list[str]:
    t0 = time.perf_counter()
    centres = unit(max(64, n // 500), 32, 1) * 2.0
    xb = clustered(n, centres, 2)
    xq = clustered(queries, centres, 3)
    t_gen = time.perf_counter() - t0
    t = time.perf_counter()
    _, truth = faiss.knn(xq, xb, K, metric=faiss.METRIC_INNER_PRODUCT)
    t_flat = time.perf_counter() - t

    factory = f"IVF{nlist},PQ{pq_m}np"  # np: no polysemous training (slow, unused here)
    times = build_ondisk(xb, factory, train_n=max(40 * nlist, 20_000), shards=shards, workdir=workdir)
    disk = (workdir / "merged.ivfdata").stat().st_size + (workdir / "populated.index").stat().st_size
    rerank = 10 * K
    ondisk = serve_in_child(workdir / "populated.index", "ondisk", xq, nprobes, workdir, rerank)
    inram = serve_in_child(workdir / "inram.index", "ram", xq, nprobes, workdir, rerank)
    per_m = 1e6 / n

    def anon(r: dict, when: str) -> float:
        return (r[when]["RssAnon"] - r["before"]["RssAnon"]) / 2**20

    def filemap(r: dict) -> float:
        return (r["after"]["RssFile"] - r["before"]["RssFile"]) / 2**20

    flat_mib = DIM * 4 * n / 2**20
    lines = [
        f"{n:,} clustered unit {DIM}-d vectors ({len(centres)} clusters), {queries} queries, top-{K}; {machine()}; "
        f"data generated in {t_gen:.0f} s; exact search {queries / t_flat:.0f} queries/s.",
        f"`{factory}` (inner product): trained in {times['train']:.0f} s, {shards} shard files filled in "
        f"{times['fill shards']:.0f} s, merged into one on-disk index in {times['merge on disk']:.1f} s; "
        f"lists + index on disk {disk / 2**20:.0f} MiB ({disk / n:.0f} bytes/vector), float16 vectors for "
        f"re-ranking {DIM * 2 * n / 2**20:.0f} MiB. Served lists: {ondisk['invlists']} vs {inram['invlists']}, "
        f"loaded in {ondisk['load_s']:.2f} s vs {inram['load_s']:.2f} s.",
        "",
        "Memory of the serving process (MiB; per million vectors in brackets). Anonymous memory is what the "
        "index costs; file-backed pages are the page cache of the mappings after the searches below, which "
        "the kernel reclaims under pressure:",
        "",
        "| index | anonymous after load | anonymous after searching | file-backed after searching |",
        "|---|---|---|---|",
        f"| exact Flat (float32 vectors in RAM) | {flat_mib:.0f} ({flat_mib * per_m:.0f}) | {flat_mib:.0f} | 0 |",
    ]
    for label, r in ((f"{factory}, lists in RAM", inram), (f"{factory}, lists on disk (mmap)", ondisk)):
        lines.append(f"| {label} | {anon(r, 'loaded'):.1f} ({anon(r, 'loaded') * per_m:.1f}) | {anon(r, 'after'):.1f} | "
                     f"{filemap(r):.1f} |")
    lines += [
        "",
        f"| nprobe | recall@10 vs exact | queries/s, lists on disk | queries/s, lists in RAM | recall@10, top-{rerank} "
        "re-ranked from float16 on disk | queries/s, on disk + re-rank |",
        "|---|---|---|---|---|---|",
    ]
    for a, b in zip(ondisk["rows"], inram["rows"], strict=True):
        found = np.asarray(a["ids"])
        assert np.array_equal(found, np.asarray(b["ids"])), "on-disk and in-RAM lists must give the same answers"
        lines.append(f"| {a['nprobe']} | {recall_at(found, truth):.3f} | {queries / a['seconds']:.0f} | "
                     f"{queries / b['seconds']:.0f} | {recall_at(np.asarray(a['rerank_ids']), truth):.3f} | "
                     f"{queries / a['rerank_seconds']:.0f} |")
    sh = sharded(xq, workdir, shards, nprobes[len(nprobes) // 2])
    lines += [
        "",
        f"Sharded serving, {sh['shards']} shards at nprobe {nprobes[len(nprobes) // 2]}: faiss.IndexShards returns "
        f"{sh['same_ids_indexshards']:.3f} of the single index's ids, a ResultHeap merge of per-shard answers "
        f"{sh['same_ids_resultheap']:.3f} (largest score difference {sh['max_score_diff']:.1e}); "
        f"{sh['qps_shards']:.0f} queries/s through IndexShards vs {sh['qps_single']:.0f} for one index on the same cores.",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    """Defaults fit a few minutes on 2 cores; `python -m benchmarks` calls this with no arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_ONDISK_N", "1000000")))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nlist", type=int, default=0, help="IVF lists (default: about sqrt(n), a power of two)")
    parser.add_argument("--pq", type=int, default=64, help="PQ sub-quantizers = bytes per vector")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--nprobe", default="4,16,64,128")
    parser.add_argument("--workdir", type=Path, default=None, help="where the index files go (default: a temp dir)")
    args = parser.parse_args(argv if argv is not None else [])
    nlist = args.nlist or int(2 ** round(np.log2(max(16.0, np.sqrt(args.n)))))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    nprobes = sorted({min(int(p), nlist) for p in args.nprobe.split(",")})
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        lines = run(args.n, args.queries, nlist, args.pq, args.shards, nprobes, Path(tmp))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
