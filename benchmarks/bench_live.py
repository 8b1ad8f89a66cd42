"""What following a growing collection costs the server: one reload (`Collection.open_snapshot`,
the metadata copied into an in-memory DuckDB and the indexes loaded) against opening the file
read-only in place (`Collection.open`, what a server that never reloads does once).

First, the live-indexing load test at length: a real server (uvicorn, reload every second) on a
collection of 8 clips while the real `clsp-search index` adds 40 more (captions included, 4 clips a
commit) and two loopback clients ask text searches and /collection, 50 ms apart: answers, failures,
latency during indexing, and how long after the indexer exits the last clips are served.

Then two sizes: the sample corpus indexed with clsp-mini (captions and measured attributes: many columns,
few rows) and 100,000 synthetic clips (`bench_load.build_collection`: few columns, many rows).

    python -m benchmarks live
    CLSP_SEARCH_LOAD_DIR=/tmp/load-100k python -m benchmarks live      # reuses bench_load's collection
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeats: int = 5) -> float:
    """Median seconds of `repeats` calls (each result closed)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        coll = fn()
        times.append(time.perf_counter() - t)
        coll.close()
    return statistics.median(times)


def sample_collection(root: Path) -> Path:
    corpus, coll = root / "corpus", root / "sample"
    subprocess.run([sys.executable, "-m", "cli", "corpus", "generate", str(corpus), "--n", "200", "--seed", "0",
                    "-q"], cwd=REPO, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "cli", "index", str(corpus / "manifest.jsonl"), "--collection", str(coll),
                    "--device", "cpu", "-q"], cwd=REPO, check=True, capture_output=True)
    return coll


def live_load(root: Path) -> None:
    """The load test of tests/api/test_live_collection.py, longer and with latencies."""
    import json
    import threading

    import httpx
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    corpus, coll = root / "live-corpus", root / "live"
    subprocess.run([sys.executable, "-m", "cli", "corpus", "generate", str(corpus), "--n", "48", "--seed", "5",
                    "-q"], cwd=REPO, check=True, capture_output=True)
    rows = [json.loads(x) for x in (corpus / "manifest.jsonl").read_text().splitlines() if x.strip()]
    for r in rows:
        r["path"] = str((corpus / r["path"]).resolve())
    first, whole = root / "first.jsonl", root / "whole.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    whole.write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = [sys.executable, "-m", "cli", "index", "--collection", str(coll), "--device", "cpu", "--workers", "0",
             "--no-attributes", "--commit-every", "4", "-q"]
    subprocess.run([*index[:4], str(first), *index[4:]], cwd=REPO, check=True, capture_output=True)
    app = create_app(coll, Settings(reload_s=1.0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    stop = threading.Event()
    latencies: list[float] = []
    failures: list[str] = []
    queries = ("a deep male voice", "a young woman speaking fast", "a whisper", "a calm narrator")

    def client(seed: int) -> None:
        k = seed
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    if k % 3 == 0:
                        r = http.get("/collection")
                        body = r.json()
                        ok = r.status_code == 200 and body["counts"]["clips"] == body["indexes"]["speech"]["ntotal"]
                    else:
                        r = http.post("/search/text", json={"query": queries[k % 4], "top_k": 10})
                        ok = r.status_code == 200 and all(h["clip"].get("source_path") for h in r.json()["hits"])
                    latencies.append(time.perf_counter() - t)
                    if not ok:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                except Exception as exc:  # noqa: BLE001 - counted
                    failures.append(repr(exc)[:200])
                k += 1
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    subprocess.run([*index[:4], str(whole), *index[4:]], cwd=REPO, check=True, capture_output=True)
    indexing_s = time.perf_counter() - t0
    during = sorted(latencies)
    exited = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as http:
        while http.get("/collection").json()["counts"]["clips"] < len(rows):
            time.sleep(0.05)
    lag = time.perf_counter() - exited
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    server.should_exit = True
    thread.join()
    watcher = app.state.watcher
    q = statistics.quantiles(during, n=100)
    print(f"live indexing: 8 -> {len(rows)} clips in {indexing_s:.1f} s of `clsp-search index`; "
          f"{len(latencies)} answers, {len(failures)} failed; during indexing p50 {q[49] * 1e3:.0f} ms, "
          f"p99 {q[98] * 1e3:.0f} ms ({len(during)} answers); all clips served {lag:.2f} s after the indexer "
          f"exited; {watcher.reloads} reloads, {watcher.failures} reloads retried")
    if failures:
        print("failures:", failures[:5])


def main() -> None:
    from benchmarks.bench_load import build_collection
    from searchengine.store import Collection

    root = Path(tempfile.mkdtemp(prefix="bench-live-"))
    live_load(root)
    big = Path(os.environ.get("CLSP_SEARCH_LOAD_DIR") or root / "load-100k")
    build_collection(big, 100_000)
    print("| collection | clips | columns | open read-only in place | reload (snapshot) |")
    print("|---|---|---|---|---|")
    for name, path in (("sample corpus, 200 clips", sample_collection(root)), ("synthetic", big)):
        probe = Collection.open(path, read_only=True)
        clips = probe.stats()["counts"]["clips"]
        columns = len(probe.sql("SELECT * FROM clips LIMIT 0").description)
        probe.close()
        in_place = timed(lambda p=path: Collection.open(p, read_only=True))
        snapshot = timed(lambda p=path: Collection.open_snapshot(p))
        print(f"| {name} | {clips:,} | {columns} | {in_place * 1e3:.0f} ms | {snapshot * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
