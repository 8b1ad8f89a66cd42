"""The serving path, one text query at a time: tokenise, encode, search the three indexes, fuse,
fetch metadata from DuckDB. p50 and p99 latency at batch 1, on the GPU when there is one (the text
tower on CUDA in bf16), else on CPU, over a collection indexed from generated speech.

    python -m benchmarks gpu_serving
    python -m benchmarks.bench_gpu_serving --clips 400 --queries 500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

QUERIES = [
    "a breathy young woman whispering", "a calm older man in a clean studio", "fast, high-pitched and cheerful",
    "a deep slow voice with a lot of reverb", "a tired speaker, noisy room", "an energetic Scottish man",
]


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=400 if cuda else 24)
    parser.add_argument("--repeat", type=int, default=25 if cuda else 2)
    parser.add_argument("--queries", type=int, default=500 if cuda else 100)
    args = parser.parse_args(argv if argv is not None else [])
    from benchmarks.bench_gpu_index import load_mini, make_corpus
    from indexer.pipeline import run_index
    from searchengine.search import Searcher, SearchOptions
    from searchengine.store import Collection

    device = torch.device("cuda" if cuda else "cpu")
    print(f"Device: {torch.cuda.get_device_name(0) if cuda else 'no GPU: the same path on CPU'}", flush=True)
    encoder = load_mini(device)
    with tempfile.TemporaryDirectory() as tmp:
        manifest, files = make_corpus(Path(tmp), args.clips, args.repeat)
        run_index(manifest, Path(tmp) / "coll", encoder, workers=1, progress=False)
        searcher = Searcher(Collection.open(Path(tmp) / "coll", read_only=True), encoder)
        options = SearchOptions(top_k=10)
        for q in QUERIES:  # warm-up: kernels, DuckDB caches
            searcher.search_text(q, options)
        total, encode = [], []
        for i in range(args.queries):
            q = f"{QUERIES[i % len(QUERIES)]} {i}"  # distinct text: nothing is served from a cache
            t = time.perf_counter()
            encoder.encode_text([q])
            if cuda:
                torch.cuda.synchronize()
            encode.append(time.perf_counter() - t)
            t = time.perf_counter()
            searcher.search_text(q, options)
            total.append(time.perf_counter() - t)
        clips = searcher.stats().get("clips", files) if hasattr(searcher, "stats") else files
        searcher.close()
    ms = np.asarray(total) * 1e3
    enc = np.asarray(encode) * 1e3
    print(f"{args.queries} text queries at batch 1 over {clips} clips, top-10, indexes speech+global+fine fused:\n"
          f"| stage | p50 ms | p99 ms |\n|---|---|---|\n"
          f"| text encoding alone | {np.percentile(enc, 50):.2f} | {np.percentile(enc, 99):.2f} |\n"
          f"| end to end (encode, search, fuse, metadata) | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 99):.2f} |",
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
