"""A million clips: the approximate index past `FLAT_MAX`, against exact search, with and without filters.

Vectors with the structure of real embeddings, not uniform random ones (on which no inverted index
can work, see RESULTS.md): the sample corpus's generated clips are embedded by clsp-mini under
augmentation (gain, added noise at 5-30 dB SNR, speed 0.9-1.1, a random 60-100 % crop), each
augmented copy a real speech vector. The million are drawn from those: a real vector plus two of the
measured augmentation residuals (augmented vector minus its clip's mean) at random scales,
re-normalised, so every vector sits where augmentation moves a clip's embedding.

Measured in one run: the exact `IDMap2,Flat` and the index `faiss_index.checked_index` builds for
`approximate_factory(1,000,000)`, the type `choose_factory` picks past `FLAT_MAX` (it checks its own
recall on 500 of the vectors before it is accepted),
1,000 held-out queries (vectors drawn the same way, not in the index), top 10: queries per second,
recall@10 against exact, bytes per vector; then filters keeping 50 %, 5 % and 1 % of the clips, one
query at a time through `search_ids` (the planner picks selector or over-fetch), recall@10 against
exact search over the allowed ids. Both indexes are timed in batches of 100 queries, exact search
with BLAS as `faiss_index` sets it; exact search at FAISS's own default threshold (which leaves
batches under 250 queries of 512 dims to its loops, 12x slower here) is timed beside it. Last, one
query at a time (as the server searches): exact against the accepted IVF at 50k, 100k and 300k
vectors (`BENCH_MILLION_LONE_SIZES`) and at the million, with which of the two `choose_factory` picks.

    python -m benchmarks million
    BENCH_MILLION_N=200000 python -m benchmarks million     # a smaller run
"""

from __future__ import annotations

import os
import time

import numpy as np

N = int(os.environ.get("BENCH_MILLION_N", "1000000"))
QUERIES = 1000
FILTER_QUERIES = 200
AUGMENTED_COPIES = 12
K = 10
LONE_QUERIES = 200
LONE_SIZES = tuple(int(x) for x in os.environ.get("BENCH_MILLION_LONE_SIZES", "50000,100000,300000").split(",") if x)
FAISS_DEFAULT_BLAS_THRESHOLD = 128_000  # faiss 1.15's `distance_compute_blas_threshold`


def real_embeddings(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """clsp-mini speech vectors of the sample corpus's clips under augmentation: (vectors, clip index)."""
    from benchmarks.bench_http_query import build_collection
    from searchengine.audio import SAMPLE_RATE, load_waveform, resample
    from searchengine.manifest import read_source
    from searchengine.model import load_model

    clips = read_source(build_collection().parent / "corpus" / "manifest.jsonl").items
    encoder = load_model("clsp-mini", device="cpu")
    rng = np.random.default_rng(seed)
    waves, owners = [], []
    for n, clip in enumerate(clips):
        wave = load_waveform(clip.path)
        for _ in range(AUGMENTED_COPIES):
            x = resample(wave, int(SAMPLE_RATE * rng.uniform(0.9, 1.1)), SAMPLE_RATE)  # speed
            keep = int(len(x) * rng.uniform(0.6, 1.0))
            start = int(rng.integers(0, len(x) - keep + 1))
            x = x[start:start + keep] * rng.uniform(0.3, 1.5)
            noise = rng.standard_normal(len(x)).astype(np.float32)
            snr = rng.uniform(5, 30)
            x = x + noise * np.sqrt(np.mean(x**2) / 10 ** (snr / 10) / np.mean(noise**2))
            waves.append(x.astype(np.float32))
            owners.append(n)
    return encoder.encode_speech(waves, SAMPLE_RATE), np.array(owners)


def structured(n: int, real: np.ndarray, owners: np.ndarray, seed: int) -> np.ndarray:
    """`n` unit vectors: a real augmented vector plus two measured augmentation residuals."""
    means = np.stack([real[owners == c].mean(axis=0) for c in range(owners.max() + 1)])
    residuals = real - means[owners]
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = (real[rng.integers(0, len(real), m)]
             + residuals[rng.integers(0, len(real), m)] * rng.uniform(0, 1.5, (m, 1))
             + residuals[rng.integers(0, len(real), m)] * rng.uniform(0, 1.5, (m, 1)))
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _qps_pair(exact, approx, queries: np.ndarray, chunk: int = 100) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Queries/s of both indexes, taking turns on chunks of the queries so that drift on a shared
    machine hits both alike; and what each found."""
    spent = [0.0, 0.0]
    found: list[list[np.ndarray]] = [[], []]
    for start in range(0, len(queries), chunk):
        for side, index in enumerate((exact, approx)):
            began = time.perf_counter()
            found[side].append(index.search(queries[start:start + chunk], K)[1])
            spent[side] += time.perf_counter() - began
    return len(queries) / spent[0], len(queries) / spent[1], np.vstack(found[0]), np.vstack(found[1])


def _blas_threshold_pair(exact, queries: np.ndarray, chunk: int = 100) -> tuple[float, float]:
    """Queries/s of exact search in batches of `chunk` at our BLAS threshold
    (`faiss_index.BLAS_THRESHOLD`) and at FAISS's own default (`FAISS_DEFAULT_BLAS_THRESHOLD`),
    taking turns on the same batches."""
    import faiss

    from searchengine.store import faiss_index as fi

    spent = [0.0, 0.0]
    try:
        for start in range(0, len(queries), chunk):
            for side, threshold in enumerate((fi.BLAS_THRESHOLD, FAISS_DEFAULT_BLAS_THRESHOLD)):
                faiss.cvar.distance_compute_blas_threshold = threshold
                began = time.perf_counter()
                exact.search(queries[start:start + chunk], K)
                spent[side] += time.perf_counter() - began
    finally:
        faiss.cvar.distance_compute_blas_threshold = fi.BLAS_THRESHOLD
    return len(queries) / spent[0], len(queries) / spent[1]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    import faiss

    from searchengine.store import faiss_index as fi

    real, owners = real_embeddings()
    vectors = structured(N, real, owners, seed=1)
    queries = structured(QUERIES, real, owners, seed=2)
    ids = np.arange(1, N + 1, dtype=np.int64)
    factory = fi.approximate_factory(N, vectors.shape[1])  # what choose_factory picks past FLAT_MAX
    print(f"{N:,} vectors of {vectors.shape[1]} dims drawn from {len(real)} real clsp-mini vectors "
          f"({owners.max() + 1} generated clips x {AUGMENTED_COPIES} augmentations); {QUERIES} held-out queries, top {K}")

    exact = fi.new_index("IDMap2,Flat", vectors.shape[1])
    fi.add(exact, vectors, ids)
    started = time.perf_counter()
    approx, choice = fi.checked_index(factory, vectors, ids, vectors.shape[1])
    build_s = time.perf_counter() - started
    print(f"choose_factory: {factory}; checked_index: {choice['reason']} ({build_s:.0f} s to train, fill and check)")
    exact_qps, approx_qps, truth, found = _qps_pair(exact, approx, queries)
    rows = [("IDMap2,Flat (exact)", "-", exact_qps, 1.0, exact), (choice["factory"], choice.get("nprobe", "-"),
                                                                  approx_qps, _recall(found, truth), approx)]
    print("| index | nprobe | queries/s | vs exact | recall@10 | bytes/vector | GB per million |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, nprobe, qps, recall, index in rows:
        size = len(faiss.serialize_index(index)) / N
        print(f"| {name} | {nprobe} | {qps:.0f} | {qps / exact_qps:.1f}x | {recall:.3f} | {size:.0f} | {size * 1e6 / 1e9:.2f} |")

    ours, default = _blas_threshold_pair(exact, queries[:300])
    print(f"\nExact search in batches of 100 queries: {ours:.0f} queries/s with BLAS from {fi.BLAS_THRESHOLD // 512} "
          f"queries of 512 dims (faiss_index.BLAS_THRESHOLD), {default:.0f} at FAISS's default threshold "
          f"({FAISS_DEFAULT_BLAS_THRESHOLD:,} numbers a batch): {ours / default:.1f}x")

    print("\nFilters, one query at a time through search_ids (the planner's choice), recall@10 against exact "
          "search over the allowed ids:")
    print("| clips kept | strategy | queries/s | recall@10 |\n|---:|---|---:|---:|")
    rng = np.random.default_rng(3)
    for share in (0.5, 0.05, 0.01):
        allowed = np.sort(rng.choice(ids, int(N * share), replace=False))
        rows_allowed = allowed - 1
        recalls, strategies, elapsed = [], set(), 0.0
        for q in queries[:FILTER_QUERIES]:
            started = time.perf_counter()
            _, got, used = fi.search_ids(approx, q, K, allowed)
            elapsed += time.perf_counter() - started
            strategies.add(used)
            best = rows_allowed[np.argpartition(-(vectors[rows_allowed] @ q), K)[:K]] + 1
            recalls.append(len(set(got.tolist()) & set(best.tolist())) / K)
        print(f"| {share:.0%} | {', '.join(sorted(strategies))} | {FILTER_QUERIES / elapsed:.0f} | {np.mean(recalls):.3f} |")

    _lone_queries(real, owners, exact, approx, choice, queries)


def _lone_queries(real: np.ndarray, owners: np.ndarray, exact, approx, choice: dict, queries: np.ndarray) -> None:
    """One query at a time, as the server asks: p50 latency of exact search and of the IVF type that
    `checked_index` accepts (Flat where it declines one), at `LONE_SIZES` and at the million of the
    main table, and which of the two `choose_factory` picks at each size."""
    from searchengine.store import faiss_index as fi

    print(f"\nOne query at a time through search_ids (as the server searches), {LONE_QUERIES} queries, the two "
          f"indexes taking turns; `choose_factory` picks exact up to FLAT_MAX = {fi.FLAT_MAX:,}:")
    print("| vectors | exact p50 ms | IVF | nprobe | IVF p50 ms | exact / IVF | IVF recall@10 | build s | chosen |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for n in LONE_SIZES:
        vectors = structured(n, real, owners, seed=1)
        ids = np.arange(1, n + 1, dtype=np.int64)
        flat = fi.new_index("IDMap2,Flat", vectors.shape[1])
        fi.add(flat, vectors, ids)
        started = time.perf_counter()
        ivf, ivf_choice = fi.checked_index(fi.approximate_factory(n, vectors.shape[1]), vectors, ids, vectors.shape[1])
        _lone_row(n, flat, ivf, ivf_choice, time.perf_counter() - started, queries, vectors.shape[1])
    _lone_row(N, exact, approx, choice, float("nan"), queries, queries.shape[1])


def _lone_row(n: int, exact, approx, choice: dict, build_s: float, queries: np.ndarray, dim: int) -> None:
    from searchengine.store import faiss_index as fi

    spent: list[list[float]] = [[], []]
    found: list[list[np.ndarray]] = [[], []]
    for q in queries[:LONE_QUERIES]:
        for side, index in enumerate((exact, approx)):
            began = time.perf_counter()
            _, got, _ = fi.search_ids(index, q, K, None)
            spent[side].append(time.perf_counter() - began)
            found[side].append(got[:K])
    exact_ms, ivf_ms = (float(np.median(t)) * 1e3 for t in spent)
    recall = _recall(np.vstack(found[1]), np.vstack(found[0]))
    chosen = "exact" if fi.family(fi.choose_factory(n, dim)) == "flat" else "IVF"
    build = "-" if build_s != build_s else f"{build_s:.0f}"
    print(f"| {n:,} | {exact_ms:.2f} | {choice['factory']} | {choice.get('nprobe', '-')} | {ivf_ms:.2f} | "
          f"{exact_ms / ivf_ms:.0f}x | {recall:.3f} | {build} | {chosen} |")


if __name__ == "__main__":
    main()
