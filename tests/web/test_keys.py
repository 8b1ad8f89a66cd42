"""The page in front of a server that requires an API key: it asks for the key once (again only if
the key is refused), keeps it for the tab's session (sessionStorage), sends it with every call, and
plays clips it had to fetch with the key (an <audio> element cannot send one)."""

from __future__ import annotations

import pytest

from .conftest import REPO, UPLOAD_LIMIT, _expected

KEY = "page-test-key-0123456789abcdefgh"


@pytest.fixture(scope="module")
def keyed_server(collection_dir, encoder, live_server):
    from api.app import create_app
    from api.settings import Limits, Settings
    from searchengine.search import Searcher
    from searchengine.store import Collection

    searcher = Searcher(Collection.open(collection_dir, read_only=True), encoder)
    app = create_app(collection_dir, Settings(limits=Limits(max_upload_bytes=UPLOAD_LIMIT, max_audio_seconds=60),
                                              web_dir=REPO / "web", api_keys=(KEY,)), searcher=searcher)
    with live_server(app) as s:
        yield s
    searcher.close()


def _context(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and not _expected(msg.text) and problems.append(msg.text))
    return context, page, problems


def _answer(page, key: str) -> None:
    dialog = page.locator("dialog#key-dialog")
    dialog.wait_for(state="visible")
    page.locator("#api-key").fill(key)
    page.get_by_role("button", name="Use key").click()


def test_the_page_asks_for_the_key_once_and_keeps_it_for_the_session(browser, keyed_server):
    context, page, problems = _context(browser, keyed_server)
    try:
        sent: list[str | None] = []
        page.on("request", lambda r: "/search/" in r.url and sent.append(r.headers.get("authorization")))
        page.goto("/")
        _answer(page, "not-the-key-0123456789abcdef")
        page.wait_for_selector("dialog#key-dialog >> text=not accepted")
        page.locator("#api-key").fill(KEY)
        page.get_by_role("button", name="Use key").click()
        page.wait_for_function("() => !document.querySelector('dialog#key-dialog')")
        page.wait_for_function("() => !/Loading/.test(document.getElementById('collection-info').textContent)")
        assert page.evaluate("() => sessionStorage.getItem('clsp-search-api-key')") == KEY

        page.get_by_label("Describe a voice").fill("a breathy young woman whispering")
        with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
            page.get_by_label("Describe a voice").press("Enter")
        assert answer.value.status == 200
        page.wait_for_selector("li.hit")
        assert sent and all(h == f"Bearer {KEY}" for h in sent), sent
        # The clip is fetched with the key and played from a blob URL.
        page.wait_for_selector("li.hit:first-child canvas.wave[data-state=drawn]")
        audio = page.locator("li.hit").first.locator("audio")
        assert audio.evaluate("a => a.src").startswith("blob:")
        state = audio.evaluate("""a => new Promise((resolve, reject) => {
            a.addEventListener('playing', () => resolve('playing'), {once: true});
            a.addEventListener('error', () => reject(new Error('media error')), {once: true});
            a.play().catch(reject); })""")
        assert state == "playing"
        audio.evaluate("a => a.pause()")

        # A reload in the same tab keeps the key: no question, the results come back.
        page.reload()
        page.wait_for_selector("li.hit")
        assert page.locator("dialog#key-dialog").count() == 0
    finally:
        context.close()
    assert not problems, f"the page logged errors: {problems}"

    # Another session (a new context) is asked again.
    context, page, problems = _context(browser, keyed_server)
    try:
        page.goto("/")
        page.locator("dialog#key-dialog").wait_for(state="visible")
    finally:
        context.close()
