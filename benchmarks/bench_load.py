"""Load test: concurrent text searches against `clsp-search serve` on a 100k-clip collection.

The server runs as its own process (the real CLI, real uvicorn, on a free 127.0.0.1 port) and this
process is the client, so client and server do not share an interpreter lock and the figures include
the loopback HTTP stack. The run is bounded by a fixed request count and a wall-clock limit, never by
"as many as possible", so it finishes on a shared two-core machine.

The 100k clips carry synthetic random unit vectors (not model output) under clsp-mini's model id:
only the *query* side runs the real model, which is what a text search costs in production (text
tower on CPU, then an exact FAISS scan and DuckDB metadata for the page). Real audio for 100k clips
would take hours to embed here and would not change the per-query work. The caption indexes are empty,
so a query's fused search does the speech scan and the fusion bookkeeping but no caption scan.

    python -m benchmarks load
    CLSP_SEARCH_LOAD_N=100000 CLSP_SEARCH_LOAD_REQUESTS=300 CLSP_SEARCH_LOAD_CONCURRENCY=8 \
        CLSP_SEARCH_LOAD_DIR=/tmp/load-100k python -m benchmarks load   # keeps the collection for reuse
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = "clsp-mini"
PHRASES = ("a calm older man", "a breathy young woman whispering", "fast and loud speech", "a voice on the telephone",
           "a deep slow voice in a large hall", "a noisy recording of a high-pitched voice", "a tired monotone speaker",
           "an energetic child reading aloud")


def build_collection(path: Path, n: int, seed: int = 0, batch: int = 20_000) -> str:
    """Create (or reuse) a collection of `n` clips with synthetic unit vectors under clsp-mini's model
    id, so `serve` loads clsp-mini to embed queries. Returns the model id. Reused when it already holds
    `n` clips of the same model, because building costs far more than one load run."""
    from searchengine.model import load_model
    from searchengine.store import Collection

    encoder = load_model(MODEL, device="cpu")
    if Collection.exists(path):
        coll = Collection.open(path, read_only=True)
        try:
            if coll.model_id == encoder.model_id and coll.info["counts"].get("clips") == n:
                return encoder.model_id
        finally:
            coll.close()
        raise SystemExit(f"{path} holds a different collection; remove it or pick another CLSP_SEARCH_LOAD_DIR")
    rng = np.random.default_rng(seed)
    coll = Collection.create(path, model_id=encoder.model_id, dim=encoder.dim)
    try:
        for start in range(0, n, batch):
            m = min(batch, n - start)
            vectors = rng.normal(size=(m, encoder.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            clips = [{"source_key": f"synthetic-{i}", "source_path": f"/synthetic/{i}.wav",
                      "duration": float(1 + i % 10), "gender": ("female", "male")[i % 2]}
                     for i in range(start, start + m)]
            coll.add(clips, vectors)
    finally:
        coll.close()
    return encoder.model_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not answer /health within {timeout:.0f} s")


async def _fire(url: str, requests: int, concurrency: int, time_limit: float, top_k: int) -> dict:
    """Send `requests` text searches with at most `concurrency` in flight; stop early at `time_limit`."""
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)
    stop_at = time.monotonic() + time_limit
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one(i: int) -> None:
            async with sem:
                if time.monotonic() > stop_at:
                    statuses["not sent (time limit)"] = statuses.get("not sent (time limit)", 0) + 1
                    return
                # A distinct text each time, so no cache between client and model can answer for it.
                body = {"query": f"{PHRASES[i % len(PHRASES)]} {i}", "top_k": top_k}
                t = time.perf_counter()
                try:
                    r = await client.post("/search/text", json=body)
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                latencies.append((time.perf_counter() - t) * 1000)
                statuses[key] = statuses.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - started
    ok = statuses.get("200", 0)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"requests": requests, "ok": ok, "statuses": statuses, "wall_s": wall, "rps": ok / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(np.max(lat))}


def load_test(n: int = 100_000, requests: int = 300, concurrency: int = 8, top_k: int = 20,
              time_limit: float = 300.0, directory: str | None = None) -> dict:
    """Build/reuse the collection, serve it from a subprocess, fire the requests, check /health after."""
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(directory) if directory else Path(tmp) / "c"
        t = time.perf_counter()
        model_id = build_collection(path, n)
        build_s = time.perf_counter() - t
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "cli", "serve", str(path), "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            t = time.perf_counter()
            _wait_healthy(url, proc, timeout=180)
            startup_s = time.perf_counter() - t
            with httpx.Client(base_url=url, timeout=120) as c:  # warm-up, not measured
                for i in range(3):
                    c.post("/search/text", json={"query": f"warm up {i}", "top_k": top_k}).raise_for_status()
            result = asyncio.run(_fire(url, requests, concurrency, time_limit, top_k))
            health = httpx.get(f"{url}/health", timeout=30)
            after = httpx.post(f"{url}/search/text", json={"query": "a calm older man", "top_k": top_k}, timeout=60)
            result.update(
                clips=n, concurrency=concurrency, top_k=top_k, model_id=model_id, build_s=build_s,
                startup_s=startup_s, health_after=health.status_code,
                search_after=after.status_code, server_alive=proc.poll() is None,
            )
        finally:
            proc.terminate()
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
        result["server_stderr_tail"] = (err or "")[-500:]
    return result


def main() -> None:
    n = int(os.environ.get("CLSP_SEARCH_LOAD_N", "100000"))
    requests = int(os.environ.get("CLSP_SEARCH_LOAD_REQUESTS", "300"))
    concurrency = int(os.environ.get("CLSP_SEARCH_LOAD_CONCURRENCY", "8"))
    r = load_test(n, requests, concurrency, directory=os.environ.get("CLSP_SEARCH_LOAD_DIR") or None)
    print(f"Load: {r['requests']} POST /search/text, concurrency {r['concurrency']}, top {r['top_k']}, "
          f"{r['clips']:,} clips (synthetic unit vectors, {r['model_id']} embeds the queries)")
    print(f"collection ready in {r['build_s']:.1f} s, server answered /health {r['startup_s']:.1f} s after start")
    print("| requests | ok | statuses | requests/s | p50 ms | p95 ms | p99 ms | max ms | /health after | search after |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
    print(f"| {r['requests']} | {r['ok']} | {statuses} | {r['rps']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
          f"| {r['p99_ms']:.0f} | {r['max_ms']:.0f} | {r['health_after']} | {r['search_after']} |")
    if not (r["ok"] == r["requests"] and r["health_after"] == 200 and r["search_after"] == 200 and r["server_alive"]):
        raise RuntimeError(f"the server did not answer every request or stopped answering: {r}")


if __name__ == "__main__":
    main()
