"""Crash safety as a store must prove it: indexing killed with SIGKILL at every point of a commit
(through the store's CLSP_SEARCH_KILL_AT hook) and at a random moment after a commit, resumed each
time.

After every kill a real server is opened on the collection (a snapshot, as `clsp-search serve`
opens it) and must answer /health and a text search from real rows, with every FAISS id backed by a
row and every row by its vector; committed clips are never fewer than before. After the last resume
every source clip is in the collection exactly once. The indexing runs are forked by
benchmarks.kill_runner from a process that loaded the model once (a kill costs about a second, not
the command's 8 s start-up); the live-collection test runs the real command. The long version, at
least 100 kills, is benchmarks/bench_crash.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from benchmarks.kill_runner import KillRunner
from searchengine.search import Searcher
from searchengine.store import Collection
from searchengine.store.check import problems
from searchengine.store.collection import KILL_POINTS

REPO = Path(__file__).resolve().parents[2]
N = 16


@pytest.fixture(scope="module")
def runner(model_spec):
    """Started first, so that its model loads while the corpus is generated."""
    with KillRunner(model_spec) as r:
        yield r


@pytest.fixture(scope="module")
def manifest(runner, make_corpus, tmp_path_factory) -> Path:
    """N clips of the generated corpus, without captions: the commit protocol is what is tested here,
    and caption encoding would only make each run slower."""
    corpus = make_corpus(40, 3)
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()][:N]
    for r in rows:
        r["path"] = str((corpus / r["path"]).resolve())
        r.pop("global_caption", None)
        r.pop("fine_captions", None)
    out = tmp_path_factory.mktemp("crash") / "manifest.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def served(coll: Path, encoder, live_server) -> int:
    """What a server opened now answers: /health and a search from real rows, the store whole."""
    if not Collection.exists(coll):
        return 0  # killed before the first commit of a new collection
    searcher = Searcher(Collection.open_snapshot(coll, wait_s=5), encoder)
    assert problems(searcher.collection) == []  # every FAISS id has its row, every row its vector
    app = create_app(coll, Settings(reload_s=0), searcher=searcher)
    with live_server(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        health = client.get("/health")
        assert health.status_code == 200, health.text
        n = health.json()["clips"]
        page = client.post("/search/text", json={"query": "a calm voice", "top_k": 10})
        assert page.status_code == 200, page.text
        hits = page.json()["hits"]
    assert len(hits) == min(10, n) and all(h["clip"].get("source_path") for h in hits)
    return n


def test_kills_inside_commits_and_at_random_then_resume(runner, manifest, tmp_path, encoder, live_server):
    rng = random.Random(1)
    coll = tmp_path / "coll"
    runs = []
    # kill -9 from outside, at a random moment after the run's first commit (its own record).
    runs.append(("random time", runner.run(manifest, coll, kill_after_s=rng.uniform(0.0, 0.5))))
    seen = [served(coll, encoder, live_server)]
    # Every point of the commit, in random order, each at the first or second commit of its run.
    for point in rng.sample(KILL_POINTS, len(KILL_POINTS)):
        runs.append((point, runner.run(manifest, coll, kill_at=f"{point}:{rng.randint(1, 2)}")))
        seen.append(served(coll, encoder, live_server))
    assert all(done["rc"] in (-signal.SIGKILL, 0) for _, done in runs), runs
    hit = {point for point, done in runs if done["rc"] == -signal.SIGKILL}
    assert hit >= set(KILL_POINTS) - {"after_info"}, f"never killed at {set(KILL_POINTS) - hit}: {runs}"
    assert seen == sorted(seen) and seen[-1] < N, f"committed clips were lost, or nothing was left to do: {seen}"
    done = runner.run(manifest, coll)  # resume
    assert done["rc"] == 0, done
    final = Collection.open(coll, read_only=True)
    try:
        assert problems(final) == []
        keys = final.sql("SELECT source_key, count(*) FROM clips GROUP BY source_key").fetchall()
        assert len(keys) == N and {n for _, n in keys} == {1}  # each source clip exactly once
        assert final.index("speech").ntotal == N
    finally:
        final.close()
    assert not [p for p in os.listdir(coll) if p.endswith(".pending")]
    assert served(coll, encoder, live_server) == N


FULL_DISK = r"""
import resource, signal, sys
import numpy as np
from searchengine.store import Collection, CollectionError
path = sys.argv[1]
rng = np.random.default_rng(0)
def unit(n):
    v = rng.standard_normal((n, 64)).astype("float32")
    return v / np.linalg.norm(v, axis=1, keepdims=True)
coll = Collection.create(path, "m@0", 64)
coll.add([{"source_key": f"a{i}", "source_path": f"/x/a{i}.wav", "duration": 1.0} for i in range(400)], unit(400))
# From here no file may grow past 64 kB: the next index file (~200 kB) cannot be written, as on a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
try:
    coll.add([{"source_key": f"b{i}", "source_path": f"/x/b{i}.wav", "duration": 1.0} for i in range(400)], unit(400))
except CollectionError as exc:
    print(exc)
    sys.exit(3)
sys.exit(0)
"""


def test_a_write_that_cannot_finish_leaves_the_last_commit_and_says_so(tmp_path):
    coll = tmp_path / "coll"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(coll)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    assert "could not commit generation 2" in proc.stdout and "still at generation 1" in proc.stdout
    assert "Free disk space" in proc.stdout
    after = Collection.open(coll, read_only=True)
    try:
        assert after.generation == 1 and after.stats()["counts"]["clips"] == 400
        assert after.index("speech").ntotal == 400 and problems(after) == []
    finally:
        after.close()
    assert not [p for p in os.listdir(coll) if ".pending" in p or p.endswith(".tmp")]
