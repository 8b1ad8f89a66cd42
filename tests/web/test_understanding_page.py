"""What a description was understood to ask, on the page: removable constraint chips, the words left to
the model, and the notice for what neither the model nor the measured attributes can rank."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.timeout(300)

QUERY = "an angry man speaking"


def wait_for_hits(page, hits: list[dict]) -> None:
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('li.hit')].map(e => +e.dataset.clipId)) === JSON.stringify(ids)",
        arg=[h["id"] for h in hits])


def submit(page, query: str) -> dict:
    """Type a description into the box and press Enter; the /search/text answer once it is shown."""
    page.get_by_label("Describe a voice").fill(query)
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.get_by_label("Describe a voice").press("Enter")
    body = answer.value.json()
    assert answer.value.status == 200, body
    wait_for_hits(page, body["hits"])
    return body


def text_search(page, query: str) -> dict:
    """A search with understanding on: the checkbox is ticked before any search, as the server's default."""
    page.goto("/")
    toggle = page.get_by_label("Check what the description says", exact=False)
    assert toggle.is_checked()
    body = submit(page, query)
    assert body["understand"] is True and toggle.is_checked()
    return body


def test_chips_notices_and_removing_a_constraint(page, artifacts: Path):
    body = text_search(page, QUERY)
    assert [u["key"] for u in body["understood"]] == ["gender:male"]
    box = page.locator("#understood")
    chip = box.locator("li.chip.constraint[data-key='gender:male']")
    assert chip.is_visible() and chip.get_attribute("data-status") == "applied"
    assert "gender: male" in chip.inner_text()
    assert box.locator("li.chip.uncovered").inner_text() == "angry (emotion)"
    notice = box.locator("p.notice[data-property=emotion]")
    assert notice.get_attribute("role") == "note"
    assert "cannot rank emotion" in notice.inner_text() and "released CLSP" in notice.inner_text()
    page.screenshot(path=str(artifacts / "web-understood.png"))

    # Removing the chip searches again without that constraint, and the URL remembers it.
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.get_by_role("button", name="Remove gender: male").click()
    assert json.loads(answer.value.request.post_data)["drop"] == ["gender:male"]
    dropped = answer.value.json()
    assert [(u["key"], u["status"]) for u in dropped["understood"]] == [("gender:male", "dropped")]
    wait_for_hits(page, dropped["hits"])
    page.wait_for_selector("#understood li.chip.constraint[data-status=dropped]")
    assert parse_qs(urlparse(page.url).query)["drop"] == ["gender:male"]
    assert box.locator("p.notice[data-property=emotion]").is_visible()  # still true without the constraint

    # ... a reload keeps it dropped, and restoring it searches with it again.
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.reload()
    assert json.loads(answer.value.request.post_data)["drop"] == ["gender:male"]
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.get_by_role("button", name="Restore gender: male").click()
    assert "drop" not in json.loads(answer.value.request.post_data)
    restored = answer.value.json()
    wait_for_hits(page, restored["hits"])
    assert [h["id"] for h in restored["hits"]] == [h["id"] for h in body["hits"]]
    page.wait_for_selector("#understood li.chip.constraint[data-status=applied]")

    # Turning understanding off gives the model's ranking: no chips, the notice stays.
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.get_by_label("Check what the description says", exact=False).uncheck()
    assert json.loads(answer.value.request.post_data)["understand"] is False
    off = answer.value.json()
    wait_for_hits(page, off["hits"])
    assert off["understood"] == [] and box.locator("li.chip.constraint").count() == 0
    assert box.locator("p.notice[data-property=emotion]").is_visible()
    assert parse_qs(urlparse(page.url).query)["understand"] == ["0"]


def test_a_new_description_forgets_removed_constraints(page):
    text_search(page, "a woman speaking quickly")
    with page.expect_response(lambda r: r.url.endswith("/search/text")):
        page.get_by_role("button", name="Remove gender: female").click()
    page.wait_for_selector("#understood li.chip.constraint[data-status=dropped]")
    body = submit(page, "a woman speaking slowly")
    assert all(u["status"] != "dropped" for u in body["understood"])
    assert "drop" not in parse_qs(urlparse(page.url).query)
