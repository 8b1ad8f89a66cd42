"""What following a growing collection costs the server: one reload (`Collection.open_snapshot`,
the metadata copied into an in-memory DuckDB and the indexes loaded) against opening the file
read-only in place (`Collection.open`, what a server that never reloads does once).

Two sizes: the sample corpus indexed with clsp-mini (captions and measured attributes: many columns,
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


def main() -> None:
    from benchmarks.bench_load import build_collection
    from searchengine.store import Collection

    root = Path(tempfile.mkdtemp(prefix="bench-live-"))
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
