"""Browser tests of the web page: Debian's Chromium driven by Playwright (no browser download),
against a real uvicorn server on a collection indexed from a small generated corpus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("CLSP_SEARCH_CHROMIUM", "/usr/bin/chromium")
N_CLIPS = 40
UPLOAD_LIMIT = 3 * 1024 * 1024
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
    # A synthetic microphone (a beep) that is granted without a prompt, for the recording test.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]

if not Path(CHROMIUM).is_file():
    # `make test` installs it, so a missing browser is a broken setup, not a reason to pass quietly.
    pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make test does), "
                "or point CLSP_SEARCH_CHROMIUM at a Chromium binary", pytrace=False)


@pytest.fixture(scope="session")
def corpus(make_corpus) -> Path:
    return make_corpus(N_CLIPS, 5)


@pytest.fixture(scope="session")
def collection_dir(corpus: Path, index_corpus) -> Path:
    # Without the measured attributes (pitch, SNR, quality: minutes of CPU for 40 clips on 2 cores): the
    # page builds its filters from whatever columns /collection reports, and the manifest's own labels
    # (gender, duration, ...) are the ones these tests filter on.
    return index_corpus(corpus, "web-collection", attributes=False)


@pytest.fixture(scope="session")
def server(collection_dir: Path, encoder, live_server):
    from api.app import create_app
    from api.settings import Limits, Settings
    from searchengine.search import Searcher
    from searchengine.store import Collection

    searcher = Searcher(Collection.open(collection_dir, read_only=True), encoder)
    app = create_app(collection_dir, Settings(limits=Limits(max_upload_bytes=UPLOAD_LIMIT, max_audio_seconds=60),
                                              web_dir=REPO / "web"), searcher=searcher)
    with live_server(app) as s:
        yield s
    searcher.close()


@pytest.fixture(scope="session")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page at laptop size; console errors and uncaught exceptions fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                  permissions=["microphone"], base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and not _expected(msg.text) and problems.append(msg.text))
    yield page
    context.close()
    assert not problems, f"the page logged errors: {problems}"


def _expected(text: str) -> bool:
    # The browser logs every 4xx the page receives; tests that provoke one check the page's message.
    return "the server responded with a status of 4" in text


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
