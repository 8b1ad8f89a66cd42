"""Crash safety under many kills: `clsp-search index` SIGKILLed again and again, resumed each time.

Half the kills come from the store's own hook (CLSP_SEARCH_KILL_AT: the process kills itself at a
named point inside a commit, the n-th time it gets there), so commits under kill are exercised by
construction, not by luck; the other half are `kill -9` from outside at a random moment after the
run's first commit has landed. After every kill a reader opens the collection the way the server
does (`Collection.open_snapshot`) and must find it whole (`searchengine.store.check.problems`),
answering a text query, and holding at least the clips the previous kill left (nothing committed is
lost). When a run completes, every source clip must be in it exactly once; the next round starts a
fresh collection so that every kill lands in a run with work to do.

The runs are forked by benchmarks.kill_runner from one process that loaded the model once, so a
kill costs about a second instead of the command's 8 s start-up. After every kill the app the
server runs (`api.app.create_app` on a snapshot) answers /health and a text search in process.

    python -m benchmarks crash                                   # 100 kills, 24-clip corpus
    CLSP_SEARCH_CRASH_KILLS=300 python -m benchmarks crash
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "clsp-mini"


def corpus_manifest(root: Path, n: int) -> Path:
    """A generated corpus of `n` clips with captions, paths made absolute."""
    corpus = root / "corpus"
    if not (corpus / "manifest.jsonl").is_file():
        subprocess.run([sys.executable, "-m", "cli", "corpus", "generate", str(corpus), "--n", str(n), "--seed", "7",
                        "-q"], cwd=REPO, check=True, capture_output=True)
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r["path"] = str((corpus / r["path"]).resolve())
    out = root / "manifest.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def check(coll: Path, encoder) -> int:
    """The server's view after a kill: whole, answering; returns its clip count."""
    from searchengine.search import Searcher
    from searchengine.store import Collection
    from searchengine.store.check import problems

    if not Collection.exists(coll):
        return 0
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    searcher = Searcher(Collection.open_snapshot(coll, wait_s=5), encoder)
    found = problems(searcher.collection)
    if found:
        raise AssertionError(f"{coll}: {found}")
    with TestClient(create_app(coll, Settings(reload_s=0), searcher=searcher)) as client:
        health = client.get("/health")
        n = health.json()["clips"]
        page = client.post("/search/text", json={"query": "a calm voice", "top_k": 10})
    hits = page.json()["hits"] if page.status_code == 200 else []
    if health.status_code != 200 or len(hits) != min(10, n) or not all(h["clip"].get("source_path") for h in hits):
        raise AssertionError(f"{coll}: /health {health.status_code}, a query found {len(hits)} hits of {n} clips")
    return n


def exactly_once(coll: Path, n: int) -> None:
    from searchengine.store import Collection
    from searchengine.store.check import problems

    c = Collection.open(coll, read_only=True)
    try:
        counts = c.sql("SELECT source_key, count(*) FROM clips GROUP BY source_key").fetchall()
        if len(counts) != n or {k for _, k in counts} != {1} or problems(c) or c.index("speech").ntotal != n:
            raise AssertionError(f"{coll}: {len(counts)} sources of {n}, {problems(c)}")
    finally:
        c.close()


def main() -> None:
    from benchmarks.kill_runner import KillRunner
    from searchengine.model import load_model
    from searchengine.store.collection import KILL_POINTS

    kills_wanted = int(os.environ.get("CLSP_SEARCH_CRASH_KILLS", "100"))
    n = int(os.environ.get("CLSP_SEARCH_CRASH_N", "24"))
    rng = random.Random(int(os.environ.get("CLSP_SEARCH_CRASH_SEED", "0")))
    root = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    manifest = corpus_manifest(root, n)
    encoder = load_model(MODEL, device="cpu")
    points: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    kills = rounds = runs = answered = 0
    last = 0
    coll = root / "round-0"
    started = time.perf_counter()
    with KillRunner(MODEL) as runner:
        while kills < kills_wanted:
            runs += 1
            if rng.random() < 0.5:
                label = rng.choice(KILL_POINTS)
                done = runner.run(manifest, coll, kill_at=f"{label}:{rng.randint(1, 4)}")
            else:
                label = "random time"
                done = runner.run(manifest, coll, kill_after_s=rng.uniform(0.0, 1.5))
            if done["rc"] == -signal.SIGKILL:
                kills += 1
                points[label] += 1
                if label == "random time":  # where it landed: pending files mean inside a commit
                    inside = coll.exists() and any(p.endswith(".pending") for p in os.listdir(coll))
                    phases["inside a commit (pending files left)" if inside else "outside a commit's writes"] += 1
                now = check(coll, encoder)
                answered += 1
                if now < last:
                    raise AssertionError(f"kill {kills}: {last} clips committed before, {now} after")
                last = now
                print(f"kill {kills}: {label}, {now} clips committed, served", flush=True)
            elif done["rc"] == 0:
                exactly_once(coll, n)
                rounds += 1
                check(coll, encoder)
                shutil.rmtree(coll)
                coll = root / f"round-{rounds}"
                last = 0
            else:
                raise AssertionError(f"run {runs} failed: {done}")
        done = runner.run(manifest, coll)  # finish the last round and check it too
        if done["rc"] != 0:
            raise AssertionError(f"the last resume failed: {done}")
    exactly_once(coll, n)
    check(coll, encoder)
    rounds += 1
    wall = time.perf_counter() - started
    print(f"{kills} kills in {runs} runs over {rounds} completed collections of {n} clips, {wall:.0f} s")
    print("| where the kill landed | kills |")
    print("|---|---|")
    for label in (*KILL_POINTS, "random time"):
        print(f"| {label} | {points[label]} |")
    for phase, count in sorted(phases.items()):
        print(f"| random time: {phase} | {count} |")
    print(f"server (app on a snapshot) answered /health and a search after {answered} of {kills} kills")
    print("after every kill: snapshot whole and answering, committed clips never fewer; after every round: "
          "each source exactly once, every FAISS id with its row and every row with its vector; "
          "clips lost: 0, duplicated: 0")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
