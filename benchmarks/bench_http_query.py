"""Text search over HTTP against the naive encode: what a user of the API gets per query.

In one run, on the sample collection (the demo's generated corpus, indexed with clsp-mini, caption
indexes included), with `clsp-search serve` in its own process on a loopback port:

  naive        a plain transformers encode of each query with the same MiniLM and mean pooling, in
               this process (no head, no memory, no search, no HTTP): the floor a user would write
  single       one client, one request at a time: POST /search/text, top 20, distinct queries
  8 clients    eight keep-alive connections, each sending its next request as soon as it has the
               last answer: throughput, p50/p99, errors

The naive encode is timed before and after the HTTP phases and its p50 taken over both, so drift on
this shared machine hits both sides. Every query text is distinct (descriptions written by the corpus
caption generator in its held-out phrasing), so no cache answers for the model. The client is a
minimal asyncio HTTP/1.1 client, so the load generator costs little of the two cores it shares with
the server.

Targets: single p50 <= 0.5x naive p50; 8 clients >= 4 queries per naive p50, p99 <= 60 ms, no errors.

After the server stops, the single client's queries run once more in this process, through the same
`Searcher` the server uses (text cache off): the text encode alone, then the whole search (encode,
query understanding, FAISS, fusion, the page as a dict). Set against the single-client p50, they say
how a request's time splits between the model, the search and the HTTP layer.

    python -m benchmarks http_query
    BENCH_HTTP_DIR=/tmp/http-bench python -m benchmarks http_query   # keeps the collection for reuse
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_load import _free_port, _wait_healthy

REPO = Path(__file__).resolve().parents[1]
CLIPS = int(os.environ.get("BENCH_HTTP_CLIPS", "108"))
NAIVE_ROUNDS = 150  # before and after the HTTP phases each
SINGLE_REQUESTS = 300
CONCURRENT_REQUESTS = 1600
CLIENTS = 8
TOP_K = 20


def varied_queries(n: int, seed: int = 2026, heldout: bool = True) -> list[str]:
    """`n` distinct voice descriptions from the corpus caption generator's held-out phrasing (its
    training phrasing with `heldout=False`): every other one cut to its first clause, as a short query
    typed into a search box (~12 tokens; whole captions run to ~35)."""
    from searchengine.corpus.captions import global_caption
    from searchengine.corpus.factors import facts, sample_factors
    from searchengine.corpus.voices import available_voices

    voices = available_voices()
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < n:
        voice = rng.choice(voices)
        caption = global_caption(facts(voice, sample_factors(rng, voice)), rng, heldout=heldout)
        if len(seen) % 2:
            caption = caption.split(",")[0].rstrip(".") + "."
        seen.setdefault(caption, None)
    return list(seen)


_SAMPLE: dict[str, Path] = {}


def build_collection() -> Path:
    """The demo's corpus (seed 7, CLIPS clips) indexed with clsp-mini, built once per process and shared
    by the benchmarks that search it (`make bench` runs them all in one process): under
    $BENCH_HTTP_DIR, kept and reused across runs (the indexer resumes, so a rerun adds nothing), else
    in a temporary directory removed when the process exits. Its corpus is `build_collection().parent /
    "corpus"`."""
    if "collection" not in _SAMPLE:
        keep = os.environ.get("BENCH_HTTP_DIR")
        if keep:
            directory = Path(keep)
        else:
            scratch = tempfile.TemporaryDirectory(prefix="clsp-bench-sample-")
            atexit.register(scratch.cleanup)
            directory = Path(scratch.name)
        corpus, collection = directory / "corpus", directory / "collection"
        run = [sys.executable, "-m", "cli"]
        subprocess.run([*run, "corpus", "generate", str(corpus), "--n", str(CLIPS), "--seed", "7", "--split-by-voice",
                        "-q"], cwd=REPO, check=True)
        subprocess.run([*run, "index", str(corpus / "manifest.jsonl"), "--collection", str(collection),
                        "--model", "clsp-mini", "--no-attributes", "-q"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
        _SAMPLE["collection"] = collection
    return _SAMPLE["collection"]


class Connection:
    """One keep-alive HTTP/1.1 connection sending JSON POSTs (the server is uvicorn, which always
    answers with Content-Length)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: dict) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        body = json.dumps(payload).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _clients(port: int, queries: list[str], clients: int) -> tuple[list[float], int, float]:
    """Latencies (s), errors, wall time of `clients` connections working through `queries`."""
    pending = iter(queries)
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        connection = Connection(port)
        try:
            for query in pending:
                started = time.perf_counter()
                try:
                    ok = await connection.post("/search/text", {"query": query, "top_k": TOP_K}) == 200
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                    ok, connection = False, Connection(port)
                latencies.append(time.perf_counter() - started)
                errors += not ok
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - started


def main() -> None:
    from benchmarks.bench_text_query import _naive

    with tempfile.TemporaryDirectory() as tmp:
        collection = build_collection()
        queries = varied_queries(NAIVE_ROUNDS * 2 + SINGLE_REQUESTS + CONCURRENT_REQUESTS + 10)
        naive_queries, single_queries = queries[:NAIVE_ROUNDS * 2], queries[NAIVE_ROUNDS * 2:][:SINGLE_REQUESTS]
        concurrent_queries = queries[NAIVE_ROUNDS * 2 + SINGLE_REQUESTS:]
        port = _free_port()
        env = {**os.environ, "CLSP_SEARCH_CACHE": str(Path(tmp) / "cache")}
        server = subprocess.Popen([sys.executable, "-m", "cli", "serve", str(collection), "--port", str(port)],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", server, timeout=300)
            naive = _naive()
            for query in queries[-10:]:  # warm up both sides, not measured
                naive(query)
            asyncio.run(_clients(port, queries[-10:], 1))
            naive_s = [_timed(naive, q) for q in naive_queries[:NAIVE_ROUNDS]]
            single_s, single_errors, _ = asyncio.run(_clients(port, single_queries, 1))
            many_s, many_errors, wall = asyncio.run(_clients(port, concurrent_queries, CLIENTS))
            naive_s += [_timed(naive, q) for q in naive_queries[NAIVE_ROUNDS:]]
            alive = server.poll() is None
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=60)
        os.environ["CLSP_SEARCH_CACHE"] = env["CLSP_SEARCH_CACHE"]  # the server's exported text graph
        encode_p50, search_p50 = _in_process(collection, single_queries)

    naive_p50 = float(np.median(naive_s)) * 1e3
    single_p50 = float(np.median(single_s)) * 1e3
    rate = len(many_s) / wall
    many_p50, many_p99 = (float(np.percentile(many_s, q)) * 1e3 for q in (50, 99))
    print(f"POST /search/text, top {TOP_K}, on {CLIPS} clips of the sample corpus (clsp-mini, caption indexes);"
          f" naive encode p50 {naive_p50:.2f} ms over {len(naive_s)} queries")
    print("| phase | requests | errors | queries/s | p50 ms | p99 ms | measure | target |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    print(f"| single client | {len(single_s)} | {single_errors} | {len(single_s) / sum(single_s):.0f} | {single_p50:.2f} "
          f"| {np.percentile(single_s, 99) * 1e3:.2f} | p50 = {single_p50 / naive_p50:.2f}x naive p50 | <= 0.5x |")
    print(f"| {CLIENTS} clients | {len(many_s)} | {many_errors} | {rate:.0f} | {many_p50:.2f} | {many_p99:.2f} "
          f"| {rate * naive_p50 / 1e3:.2f} queries per naive p50 | >= 4, p99 <= 60 ms |")
    print(f"in this process, same queries, p50: text encode {encode_p50:.2f} ms, whole search {search_p50:.2f} ms "
          f"(search beside the encode {search_p50 - encode_p50:.2f} ms; HTTP layer {single_p50 - search_p50:.2f} ms)")
    if not alive or single_errors or many_errors:
        raise RuntimeError(f"errors or a dead server: {stderr[-2000:]}")


def _in_process(collection: Path, queries: list[str]) -> tuple[float, float]:
    """p50 ms of the text encode alone and of a whole `search_text` (its page as a dict), in this
    process, on the server's searcher with the text cache off (each query is encoded in both)."""
    from searchengine.model.encoder import TextVectorCache
    from searchengine.search import Searcher, SearchOptions

    searcher = Searcher.open(collection)
    try:
        searcher.encoder.text_cache = TextVectorCache(0)
        searcher.warm_up()
        options = SearchOptions(top_k=TOP_K).validated()
        encode = [_timed(searcher.embed_text, q) for q in queries]
        search = [_timed(lambda q: searcher.search_text(q, options).to_dict(), q) for q in queries]
    finally:
        searcher.close()
    return float(np.median(encode)) * 1e3, float(np.median(search)) * 1e3


def _timed(run, query: str) -> float:
    started = time.perf_counter()
    run(query)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
