"""A real collection (generated corpus, indexed with the bundled model) served by a real uvicorn
server on a free loopback port, shared by every HTTP test of the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

N_CLIPS = 40
UPLOAD_LIMIT = 3 * 1024 * 1024  # small, so the 413 test does not have to send 50 MB


@pytest.fixture(scope="session")
def corpus(make_corpus) -> Path:
    return make_corpus(N_CLIPS, 3)


@pytest.fixture(scope="session")
def collection_dir(corpus: Path, index_corpus) -> Path:
    # Measured attributes are tested in tests/attributes and tests/curate; here they would only cost
    # minutes of CPU (DNSMOS) for columns these tests never read.
    return index_corpus(corpus, "search-collection", attributes=False)


@pytest.fixture(scope="session")
def searcher(collection_dir: Path, encoder):
    from searchengine.search import Searcher
    from searchengine.store import Collection

    s = Searcher(Collection.open(collection_dir, read_only=True), encoder)
    yield s
    s.close()


@pytest.fixture(scope="session")
def server(collection_dir: Path, searcher, live_server):
    from api.app import create_app
    from api.settings import Limits, Settings

    app = create_app(collection_dir, Settings(limits=Limits(max_upload_bytes=UPLOAD_LIMIT, max_audio_seconds=60)),
                     searcher=searcher)
    with live_server(app) as s:
        yield s


@pytest.fixture(scope="session")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def restricted(collection_dir: Path, searcher, live_server, tmp_path_factory):
    """A second server whose audio roots do not contain the corpus, and which serves a web/ folder:
    for the tests of what must never be served."""
    from api.app import create_app
    from api.settings import Settings

    web = tmp_path_factory.mktemp("web")
    (web / "index.html").write_text("<!doctype html><title>clsp-search</title>")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    app = create_app(collection_dir, Settings(audio_roots=(elsewhere,), web_dir=web), searcher=searcher)
    with live_server(app) as s:
        yield s, web


API_KEY = "contract-test-key-0123456789abcdef"


@pytest.fixture(scope="session")
def keyed(collection_dir: Path, searcher, live_server):
    """The same collection served with an API key required (`Authorization: Bearer API_KEY`)."""
    from api.app import create_app
    from api.settings import Limits, Settings

    app = create_app(collection_dir, Settings(limits=Limits(max_upload_bytes=UPLOAD_LIMIT, max_audio_seconds=60),
                                              api_keys=(API_KEY,)), searcher=searcher)
    with live_server(app) as s:
        yield s
