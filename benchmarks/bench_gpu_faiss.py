"""FAISS on the GPU: exact Flat against the card's memory bandwidth, and approximate indexes at
recall@10 = 0.95, at query batch sizes 1, 16 and 256.

* Flat (float32 and float16 storage): a search must read every stored vector, so database bytes
  per second divided by the memory bandwidth says how close to the hardware limit it runs.
  Bandwidth comes from NVML (memory clock x bus width x 2) on a GPU; on CPU it is measured with a
  large numpy copy, so the ratio is computed here too.
* IVF-Flat, IVF-PQ (+ exact re-ranking) and CAGRA (when the faiss build has cuVS): the smallest
  search parameter that reaches recall@10 >= 0.95 against Flat, then queries per second there.

N defaults to 10 M on a GPU and 200 k on CPU (`--n`). Vectors are clustered with a low intrinsic
dimension (see `bench_ondisk.clustered`), a stand-in for real embeddings.

    python -m benchmarks gpu_faiss
    python -m benchmarks.bench_gpu_faiss --n 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import faiss
import numpy as np

from benchmarks.bench_ondisk import DIM, clustered, recall_at, unit

K = 10
BATCHES = (1, 16, 256)
TARGET = 0.95


def gpus() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def bandwidth_bytes_per_s() -> tuple[float, str]:
    """Peak memory bandwidth of GPU 0 from NVML, else a measured host copy rate (read + write)."""
    if gpus():
        try:
            import pynvml

            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
            clock = pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM) * 1e6
            bits = pynvml.nvmlDeviceGetMemoryBusWidth(h)
            return clock * 2 * bits / 8, "NVML peak"
        except Exception as exc:  # noqa: BLE001
            raise SystemExit(f"install nvidia-ml-py to read the card's bandwidth ({exc})") from exc
    a = np.ones(256 * 2**20 // 4, np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    t = time.perf_counter()
    for _ in range(5):
        np.copyto(b, a)
    return 5 * 2 * a.nbytes / (time.perf_counter() - t), "measured host copy"


def timed_qps(search: Callable[[np.ndarray], np.ndarray], xq: np.ndarray, batch: int) -> tuple[float, float]:
    """(queries/s, seconds per batch) over as many batches as fit in ~2 s (at least one), after a warm-up.

    Batches wrap around the query set, so a batch larger than the remaining queries still runs."""
    if batch > len(xq):
        raise ValueError(f"batch {batch} is larger than the {len(xq)} queries; pass --queries >= {batch}")
    search(xq[:batch])
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < 2.0:
        start = n % (len(xq) - batch + 1)
        search(xq[start : start + batch])
        n += batch
    dt = time.perf_counter() - t0
    return n / dt, dt / (n // batch)


def main(argv: list[str] | None = None) -> None:
    ngpu = gpus()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000 if ngpu else 200_000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args(argv if argv is not None else [])
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    res = faiss.StandardGpuResources() if ngpu else None
    print(f"{'GPU' if ngpu else 'no GPU: CPU faiss'} ({ngpu} GPUs), faiss {faiss.__version__}, N={args.n:,}", flush=True)
    centres = unit(max(64, args.n // 500), 32, 1) * 2.0
    xb = clustered(args.n, centres, 2)
    xq = clustered(args.queries, centres, 3)
    bw, bw_src = bandwidth_bytes_per_s()

    def flat(fp16: bool) -> faiss.Index:
        if ngpu:
            cfg = faiss.GpuIndexFlatConfig()
            cfg.useFloat16 = fp16
            index = faiss.GpuIndexFlatIP(res, DIM, cfg)
        else:
            index = faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT) if fp16 \
                else faiss.IndexFlatIP(DIM)
        for a in range(0, len(xb), 1_000_000):
            index.add(xb[a : a + 1_000_000])
        return index

    lines = [f"Memory bandwidth {bw / 1e9:.0f} GB/s ({bw_src}).", "",
             "| index | batch | queries/s | database GB/s | / bandwidth | recall@10 |", "|---|---|---|---|---|---|"]
    truth = None
    for fp16 in (False, True):
        index = flat(fp16)
        _, found = index.search(xq, K)
        truth = found if truth is None else truth
        scanned = args.n * DIM * (2 if fp16 else 4)
        for batch in BATCHES:
            qps, per_batch = timed_qps(lambda q, i=index: i.search(q, K)[1], xq, batch)
            lines.append(f"| Flat {'float16' if fp16 else 'float32'} | {batch} | {qps:.0f} | {scanned / per_batch / 1e9:.0f} | "
                         f"{scanned / per_batch / bw:.2f} | {recall_at(found, truth):.3f} |")
        del index
    nlist = int(2 ** round(np.log2(4 * np.sqrt(args.n))))
    train = xb[np.random.default_rng(5).choice(len(xb), min(len(xb), 64 * nlist), replace=False)]

    def to_gpu(index: faiss.Index) -> faiss.Index:
        return faiss.index_cpu_to_gpu(res, 0, index) if ngpu else index

    candidates: list[tuple[str, faiss.Index, str, list[int]]] = []
    for factory in (f"IVF{nlist},Flat", f"IVF{nlist},PQ64np"):
        cpu_index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
        cpu_index.train(train)
        index = to_gpu(cpu_index)
        for a in range(0, len(xb), 1_000_000):
            index.add(xb[a : a + 1_000_000])
        if "PQ" in factory:  # PQ codes alone rarely reach 0.95: re-rank the top candidates exactly
            refined = faiss.IndexRefineFlat(index, faiss.swig_ptr(xb))
            refined.k_factor = 8
            index, factory = refined, factory + " + re-rank x8"
        candidates.append((factory, index, "nprobe", [1, 2, 4, 8, 16, 32, 64, 128, 256]))
    if ngpu and hasattr(faiss, "GpuIndexCagra"):
        cfg = faiss.GpuIndexCagraConfig()
        cfg.graph_degree, cfg.intermediate_graph_degree = 64, 128
        cagra = faiss.GpuIndexCagra(res, DIM, faiss.METRIC_INNER_PRODUCT, cfg)
        cagra.train(xb)
        candidates.append(("CAGRA (cuVS)", cagra, "itopk", [16, 32, 64, 128, 256, 512]))
    else:
        lines_cagra = "CAGRA: not in this faiss build" if ngpu else "CAGRA: no GPU: skipped"
        print(lines_cagra, flush=True)

    def params(kind: str, value: int, index: faiss.Index):
        if kind == "itopk":
            p = faiss.SearchParametersCagra()
            p.itopk_size = value
            return p
        ivf = index.base_index if isinstance(index, faiss.IndexRefine) else index
        if ngpu:
            faiss.GpuParameterSpace().set_index_parameter(ivf, "nprobe", value)
        else:
            faiss.extract_index_ivf(ivf).nprobe = value
        return None

    for name, index, kind, values in candidates:
        chosen, rec = None, 0.0
        for v in values:
            p = params(kind, v, index)
            _, found = index.search(xq, K, params=p) if p else index.search(xq, K)
            rec = recall_at(found, truth)
            if rec >= TARGET:
                chosen = v
                break
        if chosen is None:
            lines.append(f"| {name} | - | - | - | - | best {rec:.3f} < {TARGET} |")
            continue
        p = params(kind, chosen, index)
        for batch in BATCHES:
            qps, _ = timed_qps(lambda q, i=index, p=p: (i.search(q, K, params=p) if p else i.search(q, K))[1], xq, batch)
            lines.append(f"| {name}, {kind}={chosen} | {batch} | {qps:.0f} | - | - | {rec:.3f} |")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
