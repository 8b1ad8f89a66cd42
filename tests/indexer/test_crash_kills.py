"""Crash safety as a store must prove it: indexing killed with SIGKILL at chosen points inside the
commit (through the store's CLSP_SEARCH_KILL_AT hook) and at a random moment, resumed each time.

After every kill a reader opens the collection as the server does (a snapshot) and must find it
whole and answering; after the last resume every source is in it exactly once. The long version,
hundreds of kills, is benchmarks/bench_crash.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchengine.search import Searcher
from searchengine.store import Collection
from searchengine.store.check import problems
from searchengine.store.collection import KILL_POINTS

assert set(KILL_POINTS) >= {"before_db_commit", "after_db_commit", "after_rename"}

REPO = Path(__file__).resolve().parents[2]
N = 8
INSIDE = ("before_db_commit", "after_db_commit", "after_rename")
"""Points inside the commit the suite kills at: before and after the DuckDB commit that decides, and
between two renames over live index files. benchmarks/bench_crash.py hits every point in KILL_POINTS."""


@pytest.fixture(scope="module")
def manifest(make_corpus, tmp_path_factory) -> Path:
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


def index_cmd(manifest: Path, coll: Path, model: str) -> list[str]:
    return [sys.executable, "-m", "cli", "index", str(manifest), "--collection", str(coll), "--model", model,
            "--device", "cpu", "--workers", "0", "--no-attributes", "--commit-every", "2", "-q"]


def whole_and_answering(coll: Path, encoder) -> int:
    """What a server opened now would see: no inconsistency, and a query answered from real rows."""
    if not Collection.exists(coll):
        return 0  # killed before the first commit of a new collection
    searcher = Searcher(Collection.open_snapshot(coll, wait_s=5), encoder)
    assert problems(searcher.collection) == []
    n = searcher.clip_count()
    page = searcher.search_text("a calm voice")
    assert len(page.hits) == min(10, n) and all(h.clip.get("source_path") for h in page.hits)
    return n


def test_kills_inside_commits_and_at_random_then_resume(manifest, tmp_path, encoder, model_spec):
    rng = random.Random(1)
    coll = tmp_path / "coll"
    hit: list[str] = []
    seen = []
    for point in rng.sample(INSIDE, len(INSIDE)):
        env = {**os.environ, "CLSP_SEARCH_KILL_AT": f"{point}:{rng.randint(1, 2)}"}
        proc = subprocess.run(index_cmd(manifest, coll, model_spec), cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr[-3000:]
        if proc.returncode == -signal.SIGKILL:
            hit.append(point)
        seen.append(whole_and_answering(coll, encoder))
    assert set(hit) == set(INSIDE), f"points never reached: {set(INSIDE) - set(hit)}"
    # A kill from outside, at a random moment of a run.
    proc = subprocess.Popen(index_cmd(manifest, coll, model_spec), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(1.0, 4.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    seen.append(whole_and_answering(coll, encoder))
    assert seen == sorted(seen), "committed clips were lost"
    done = subprocess.run(index_cmd(manifest, coll, model_spec), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    final = Collection.open(coll, read_only=True)
    try:
        assert problems(final) == []
        keys = final.sql("SELECT source_key, count(*) FROM clips GROUP BY source_key").fetchall()
        assert len(keys) == N and {n for _, n in keys} == {1}  # each source clip exactly once
        assert final.index("speech").ntotal == N
        assert not [p for p in os.listdir(coll) if p.endswith(".pending")]
    finally:
        final.close()


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
