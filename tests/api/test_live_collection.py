"""A live collection: a server started before an indexing run serves each generation the indexer
commits, within seconds, with no restart, while a loopback load runs without a single failed query;
then a compact under the same load merges the segments and the server moves to that generation too.

The indexer is the real command (`python -m cli index`) in a process of its own, the server the real
uvicorn; what they share is only the collection directory on disk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.live import CollectionWatcher
from api.settings import Settings
from indexer.pipeline import run_index
from searchengine.search import Searcher
from searchengine.store import Collection

REPO = Path(__file__).resolve().parents[2]
FIRST = 4  # clips indexed before the server starts; the rest come while it serves
TOTAL = 12
QUERIES = ("a deep male voice", "a young woman speaking fast", "a whisper", "a calm narrator")


def index(manifest: Path, coll: Path, model: str, commit_every: int = 4) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cli", "index", str(manifest), "--collection", str(coll), "--model", model,
           "--device", "cpu", "--workers", "0", "--no-attributes", "--commit-every", str(commit_every), "-q"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def manifests(make_corpus, tmp_path_factory) -> tuple[Path, Path, int]:
    corpus = make_corpus(40, 3)
    lines = [line for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()][:TOTAL]
    out = tmp_path_factory.mktemp("live-manifests")
    first, whole = out / "first.jsonl", out / "whole.jsonl"
    # Paths in the manifest are relative to it: point them at the corpus.
    rows = [json.loads(line) for line in lines]
    for r in rows:  # captions only slow both indexing runs down here; speech search finds the clips
        r["path"] = str((corpus / r["path"]).resolve())
        r.pop("global_caption", None)
        r.pop("fine_captions", None)
    first.write_text("".join(json.dumps(r) + "\n" for r in rows[:FIRST]))
    whole.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return first, whole, len(rows)


@pytest.fixture(scope="module")
def first_collection(manifests, encoder, model_spec, tmp_path_factory) -> Path:
    """The first FIRST clips, indexed in this process with the loaded model (the second run is the
    real command); each test works on a copy."""
    coll = tmp_path_factory.mktemp("live-first") / "coll"
    run_index(manifests[0], coll, encoder, workers=0, progress=False, attributes=False, commit_every=4,
              model_spec=model_spec, args={"model": model_spec})
    return coll


class Load:
    """Clients asking text searches and collection stats in a loop; every answer is checked."""

    def __init__(self, url: str, clients: int = 2, pause_s: float = 0.05) -> None:
        self.pause_s = pause_s  # bounded: the indexer beside it needs the cores too
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.seen_clips: list[int] = []
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]

    def _check(self, client: httpx.Client, n: int) -> None:
        if n % 3 == 0:
            r = client.get("/collection")
            if r.status_code != 200:
                raise AssertionError(f"/collection {r.status_code}: {r.text[:200]}")
            body = r.json()
            clips = body["counts"]["clips"]
            # One generation per answer: the row count and the vector count come from the same one.
            if clips != body["indexes"]["speech"]["ntotal"]:
                raise AssertionError(f"mixed generations: {clips} rows, {body['indexes']['speech']['ntotal']} vectors")
            with self.lock:
                self.seen_clips.append(clips)
        else:
            r = client.post("/search/text", json={"query": QUERIES[n % len(QUERIES)], "top_k": 10})
            if r.status_code != 200:
                raise AssertionError(f"/search/text {r.status_code}: {r.text[:200]}")
            for hit in r.json()["hits"]:
                if not hit["clip"].get("source_path"):
                    raise AssertionError(f"hit {hit['id']} has no row")

    def _client(self, seed: int) -> None:
        n = seed
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    self._check(client, n)
                    with self.lock:
                        self.ok += 1
                except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                    with self.lock:
                        self.failures.append(repr(exc)[:300])
                n += 1
                time.sleep(self.pause_s)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def test_server_follows_an_indexer_under_load(manifests, first_collection, tmp_path, encoder, model_spec,
                                              live_server):
    _, whole, total = manifests
    coll = tmp_path / "coll"
    shutil.copytree(first_collection, coll)

    app = create_app(coll, Settings(reload_s=0.5), searcher=Searcher(Collection.open_snapshot(coll), encoder))
    with live_server(app) as server, Load(server.url) as load:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            before = client.get("/collection").json()
            assert before["counts"]["clips"] == FIRST
            old = {h["clip"]["source_path"] for h in
                   client.post("/search/text", json={"query": "a voice", "top_k": 100}).json()["hits"]}
            second = index(whole, coll, model_spec)  # the server keeps running, and keeps the load answered
            assert second.returncode == 0, second.stderr[-3000:]
            finished = time.monotonic()
            while time.monotonic() - finished < 10:
                now = client.get("/collection").json()
                if now["counts"]["clips"] == total:
                    break
                time.sleep(0.1)
            lag = time.monotonic() - finished
            assert now["counts"]["clips"] == total, f"the server still reports {now['counts']['clips']} clips"
            hits = client.post("/search/text", json={"query": "a voice", "top_k": 100}).json()["hits"]
            assert now["indexes"]["speech"]["segments"] > 1  # one segment per commit so far
            # The real compact command under the same load: the server moves to the merged generation.
            compacted = subprocess.run([sys.executable, "-m", "cli", "compact", str(coll), "--json"], cwd=REPO,
                                       capture_output=True, text=True, timeout=120)
            assert compacted.returncode == 0, compacted.stderr[-3000:]
            finished = time.monotonic()
            while time.monotonic() - finished < 10 and now["indexes"]["speech"]["segments"] != 1:
                time.sleep(0.1)
                now = client.get("/collection").json()
            assert now["indexes"]["speech"]["segments"] == 1 and now["counts"]["clips"] == total
            merged = client.post("/search/text", json={"query": "a voice", "top_k": 100}).json()["hits"]
            assert [(h["id"], h["score"]) for h in merged] == [(h["id"], h["score"]) for h in hits]
        time.sleep(0.5)  # the load sees the final generation too
    assert load.failures == [], load.failures[:5]
    assert load.ok >= 20
    assert load.seen_clips == sorted(load.seen_clips), "a reader went back to an older generation"
    assert FIRST < len(set(load.seen_clips)) or max(load.seen_clips) == total
    new = {h["clip"]["source_path"] for h in hits} - old
    assert len(old) == FIRST and len(hits) == total and len(new) == total - FIRST  # the new clips are found
    assert lag < 5
    assert app.state.watcher.reloads >= 1
    print(f"live indexing: {load.ok} answers, {len(load.failures)} failed, generations seen "
          f"{sorted(set(load.seen_clips))} clips, last one served {lag:.2f} s after the indexer exited")


def test_a_failed_reload_keeps_the_old_generation(first_collection, tmp_path, encoder):
    """While another process holds the DuckDB file read-write, a reload fails; the server keeps what it
    has and takes the new generation at a later poll."""
    coll = tmp_path / "coll"
    shutil.copytree(first_collection, coll)
    app = create_app(coll, Settings(reload_s=0), searcher=Searcher(Collection.open_snapshot(coll), encoder))
    watcher = CollectionWatcher(app, coll, reload_s=1.0, wait_s=0.2)
    assert watcher.poll() is False  # nothing new
    with Collection.open(coll) as writer:  # a new generation: two clips deleted
        assert writer.delete([1, 2]) == 2
    total = FIRST - 2
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(coll / "meta.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        old = app.state.searcher
        assert watcher.poll() is False and watcher.failures == 1
        assert app.state.searcher is old and old.clip_count() == FIRST  # still answers, from its copy
    finally:
        holder.kill()
        holder.wait()
    assert watcher.poll() is True
    assert app.state.searcher.clip_count() == total and app.state.searcher.collection.index("speech").ntotal == total
