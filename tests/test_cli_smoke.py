"""Every user command, run once through the real `clsp-search` entry point as a newcomer types it.

`corpus generate` (the session's corpus fixture runs it), `index`, `search`, `similar`, `export`,
`eval`, `serve`, `train` and `tune-text` each run as a subprocess of `python -m cli` (the module
behind the console script) on one small generated corpus, and their output is checked for the work they claim: so a command that moved,
lost an import or a flag fails here even where its library code is tested elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO, free_port

pytestmark = pytest.mark.slow


def clsp_search(*args: str, timeout: float = 600) -> str:
    """Run `clsp-search ARGS`; return its stdout, failing the test with its stderr if it fails."""
    proc = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"clsp-search {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def corpus(make_corpus) -> Path:
    return make_corpus(40, 3)  # shared with the tune-text tests: generated once per session


@pytest.fixture(scope="module")
def collection(corpus, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli-smoke") / "c"
    clsp_search("index", str(corpus / "manifest.jsonl"), "--collection", str(path), "--workers", "0", "--no-attributes")
    return path


def test_index_search_similar_and_export(collection, tmp_path):
    assert (collection / "collection.json").is_file() and any(collection.glob("speech.*.faiss"))
    found = json.loads(clsp_search("search", str(collection), "a slow, low-pitched man", "--top-k", "3", "--json"))
    assert len(found["hits"]) == 3
    first = str(found["hits"][0]["id"])
    alike = json.loads(clsp_search("similar", str(collection), first, "--top-k", "3", "--json"))
    assert len(alike["hits"]) == 3 and first not in {str(h["id"]) for h in alike["hits"]}
    picks = tmp_path / "picks.jsonl"
    clsp_search("export", str(collection), "a calm woman", "-n", "4", "-o", str(picks))
    assert len(picks.read_text().splitlines()) == 4


def test_a_top_k_past_the_library_limit_is_one_clear_error(collection):
    proc = subprocess.run([sys.executable, "-m", "cli", "search", str(collection), "a voice", "--top-k", "100001"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "top_k must be between 1 and 100000" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_answers_over_http(collection):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", str(collection), "--port", str(port)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    health = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-3000:]
                assert time.time() < deadline, "the server did not answer within 120 s"
                time.sleep(0.5)
        assert health["status"] == "ok" and health["clips"] == 40
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_eval_scores_a_manifest(corpus):
    report = json.loads(clsp_search("eval", "--model", "clsp-mini", "--manifest", str(corpus / "manifest.jsonl"),
                                    "--split", "all", "--json"))
    assert report["model"].startswith("clsp-mini@") and report["split"] == "all"
    scored = next(iter(report["retrieval"].values()))
    assert scored["clips"] >= 2 and 0.0 <= scored["global"]["text_to_speech"]["R@1"] <= 1.0


def test_train_then_tune_text(corpus, tmp_path):
    trained = tmp_path / "trained"
    out = clsp_search("train", "--corpus", str(corpus), "--out", str(trained), "--stage1-epochs", "1", "--epochs", "1",
                      "--batch-size", "8", "--workers", "1")
    assert f"model written to {trained}" in out and (trained / "model.safetensors").is_file()
    tuned = tmp_path / "tuned"
    out = clsp_search("tune-text", "--model", str(trained), "--corpus", str(corpus), "--out", str(tuned),
                      "--epochs", "1", "--batch-size", "8", "--workers", "1", "--attribute-caption-weight", "0")
    assert f"model written to {tuned}" in out
    config = json.loads((tuned / "config.json").read_text())
    assert config["text_tuning"]["base_model"].startswith("clsp-mini@")
