"""Fixtures the whole suite shares: the model collections are indexed and queried with, the real
corpus generator, and a real uvicorn server on a loopback port.

The model is the bundled clsp-mini unless CLSP_SEARCH_TEST_MODEL names another checkpoint. A model
that cannot be loaded is an error, not a skip: every collection, API and page test depends on it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODEL = os.environ.get("CLSP_SEARCH_TEST_MODEL", "clsp-mini")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Exported ONNX graphs go to the session's temporary folder, not the user's ~/.cache; servers
    and commands the tests start inherit it through the environment."""
    root = tmp_path_factory.mktemp("clsp-search-cache")
    previous = os.environ.get("CLSP_SEARCH_CACHE")
    os.environ["CLSP_SEARCH_CACHE"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("CLSP_SEARCH_CACHE", None)
    else:
        os.environ["CLSP_SEARCH_CACHE"] = previous


@pytest.fixture(scope="session")
def model_spec() -> str:
    """The name or path tests pass as `--model` / `model_spec`."""
    return MODEL


@pytest.fixture(scope="session")
def encoder():
    """The loaded model, once per session (loading the text tower costs seconds)."""
    from searchengine.model import load_model

    return load_model(MODEL, device="cpu")


@pytest.fixture(scope="session")
def make_corpus(tmp_path_factory) -> Callable[..., Path]:
    """Generate a small style corpus with the real CLI (`clsp-search corpus generate`), once per
    (n, seed, split_by_voice) in the session."""
    made: dict[tuple[int, int, bool], Path] = {}

    def make(n: int, seed: int, split_by_voice: bool = True) -> Path:
        key = (n, seed, split_by_voice)
        if key not in made:
            out = tmp_path_factory.mktemp(f"corpus-n{n}-s{seed}")
            cmd = [sys.executable, "-m", "cli", "corpus", "generate", str(out), "--n", str(n),
                   "--seed", str(seed), "-q"] + (["--split-by-voice"] if split_by_voice else [])
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-3000:]
            made[key] = out
        return made[key]

    return make


@pytest.fixture(scope="session")
def index_corpus(encoder, model_spec: str, tmp_path_factory) -> Callable[..., Path]:
    """Index a generated corpus into a fresh collection with the session's model (real pipeline)."""

    def index(corpus: Path, name: str, attributes: bool = False) -> Path:
        from indexer.pipeline import run_index

        path = tmp_path_factory.mktemp(name) / "c"
        run_index(corpus / "manifest.jsonl", path, encoder, workers=0, progress=False, attributes=attributes,
                  model_spec=model_spec, args={"model": model_spec})
        return path

    return index


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn.Server in a thread: the real ASGI server on a real loopback socket."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server() -> type[LiveServer]:
    """`with live_server(app) as server: ... server.url` serves an ASGI app for real."""
    return LiveServer
