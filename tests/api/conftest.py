"""A real collection (generated corpus, indexed with the bundled model) served by a real uvicorn
server on a free loopback port, shared by every HTTP test of the session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
N_CLIPS = 40
MODEL = os.environ.get("CLSP_SEARCH_TEST_MODEL", "clsp-mini")
UPLOAD_LIMIT = 3 * 1024 * 1024  # small, so the 413 test does not have to send 50 MB


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search-corpus")
    cmd = [sys.executable, "-m", "searchengine.cli", "corpus", "generate", str(out), "--n", str(N_CLIPS),
           "--seed", "3", "--split-by-voice", "-q"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def encoder():
    from searchengine.model import CheckpointError, load_model

    try:
        return load_model(MODEL, device="cpu")
    except CheckpointError as exc:
        pytest.skip(f"model {MODEL} is not available: {exc}")


@pytest.fixture(scope="session")
def collection_dir(corpus: Path, encoder, tmp_path_factory) -> Path:
    from indexer.pipeline import run_index

    path = tmp_path_factory.mktemp("search-collection") / "c"
    run_index(corpus / "manifest.jsonl", path, encoder, workers=0, progress=False, model_spec=MODEL, args={"model": MODEL})
    return path


@pytest.fixture(scope="session")
def searcher(collection_dir: Path, encoder):
    from searchengine.search import Searcher
    from searchengine.store import Collection

    s = Searcher(Collection.open(collection_dir, read_only=True), encoder)
    yield s
    s.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """uvicorn.Server in a thread: the real ASGI server, the real sockets."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
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
def server(collection_dir: Path, searcher) -> Iterator[Server]:
    from api.app import create_app
    from api.settings import Limits, Settings

    app = create_app(collection_dir, Settings(limits=Limits(max_upload_bytes=UPLOAD_LIMIT, max_audio_seconds=60)),
                     searcher=searcher)
    with Server(app) as s:
        yield s


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def restricted(collection_dir: Path, searcher, tmp_path_factory) -> Iterator[tuple[Server, Path]]:
    """A second server whose audio roots do not contain the corpus, and which serves a web/ folder:
    for the tests of what must never be served."""
    from api.app import create_app
    from api.settings import Settings

    web = tmp_path_factory.mktemp("web")
    (web / "index.html").write_text("<!doctype html><title>clsp-search</title>")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    app = create_app(collection_dir, Settings(audio_roots=(elsewhere,), web_dir=web), searcher=searcher)
    with Server(app) as s:
        yield s, web
