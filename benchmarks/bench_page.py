"""The search page in Chromium: time from pressing Enter to the results drawn, on the sample collection.

`clsp-search serve` runs in its own process over the demo's corpus (benchmarks/bench_http_query.py
builds it); Debian's Chromium, driven by Playwright as in tests/web, types a distinct description
into the page and presses Enter. The page stamps, with its own clock (`performance.now()`), the Enter
key (a listener on the search box) and the last change of the result list (a MutationObserver);
the browser's resource timing gives the `/search/text` request's span. So the figures hold no
Playwright round trips: Enter -> request sent (the page's own work), the request, response -> results
drawn (parsing and building the cards), Enter -> drawn, and the server's `took_ms` beside them.

    python -m benchmarks page
    BENCH_HTTP_DIR=/tmp/http-bench python -m benchmarks page     # reuses bench_http_query's collection
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.bench_http_query import build_collection, varied_queries
from benchmarks.bench_load import _free_port, _wait_healthy

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CLSP_SEARCH_CHROMIUM", "/usr/bin/chromium")
#: As tests/web: no sandbox as root, no GPU, no background connections on this closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SEARCHES = 40
WARM_UP = 3

def main() -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    with tempfile.TemporaryDirectory() as tmp:
        collection = build_collection()
        queries = varied_queries(SEARCHES + WARM_UP, seed=7)
        port = _free_port()
        env = {**os.environ, "CLSP_SEARCH_CACHE": str(Path(tmp) / "cache")}
        server = subprocess.Popen([sys.executable, "-m", "cli", "serve", str(collection), "--port", str(port)],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", server, timeout=300)
            rows = _measure(sync_playwright, port, queries)[WARM_UP:]
        finally:
            server.terminate()
            server.communicate(timeout=60)

    print(f"The page in Chromium, {len(rows)} text searches (distinct descriptions, default top-k) on the "
          "sample collection, stamped by the page's own clock")
    print("| span | p50 ms | p95 ms |\n|---|---:|---:|")
    for label, column in zip(_SPANS, np.array(rows).T, strict=True):
        print(f"| {label} | {np.percentile(column, 50):.1f} | {np.percentile(column, 95):.1f} |")


_SPANS = ("Enter -> request sent (the page's work)", "the /search/text request", "response -> results drawn",
          "**Enter -> results drawn**", "the server's search (took_ms)")

_INSTRUMENT = """() => {
  document.getElementById('q').addEventListener('keydown', e => {
    if (e.key === 'Enter') window.benchEnter = performance.now(); }, true);
  new MutationObserver(() => { window.benchDrawn = performance.now(); })
    .observe(document.getElementById('hits'), {childList: true});
}"""

_READ = """() => {
  const sent = performance.getEntriesByType('resource').filter(e => e.name.endsWith('/search/text'));
  const last = sent[sent.length - 1];
  performance.clearResourceTimings();
  return [window.benchEnter, last.startTime, last.responseEnd, window.benchDrawn];
}"""


def _measure(sync_playwright, port: int, queries: list[str]) -> list[list[float]]:
    """Per search: the spans of `_SPANS`, in ms."""
    rows: list[list[float]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, base_url=f"http://127.0.0.1:{port}")
        page.set_default_timeout(60_000)
        page.goto("/")
        page.evaluate(_INSTRUMENT)
        box = page.get_by_label("Describe a voice")
        for query in queries:
            with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
                box.fill(query)
                box.press("Enter")
            body = answer.value.json()
            page.wait_for_function(
                "ids => JSON.stringify([...document.querySelectorAll('li.hit')].map(e => +e.dataset.clipId)) "
                "=== JSON.stringify(ids)", arg=[h["id"] for h in body["hits"]], polling="raf")
            enter, sent, answered, drawn = page.evaluate(_READ)
            rows.append([sent - enter, answered - sent, drawn - answered, drawn - enter, float(body["took_ms"])])
        browser.close()
    return rows


if __name__ == "__main__":
    main()
