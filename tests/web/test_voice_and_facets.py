"""The page's voice <-> style slider for searches by example, and facets drawn one per fact."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest

from .test_page import text_search, wait_for_hits

pytestmark = pytest.mark.timeout(300)


def test_voice_slider_sends_the_weight_and_keeps_it_in_the_url(page):
    body = text_search(page)
    assert page.locator("#voice-control").is_hidden()  # a description has no voice to weigh
    target = body["hits"][0]["id"]
    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.locator(f"li.hit[data-clip-id='{target}'] button.more-like").click()
    assert "voice_weight" not in json.loads(answer.value.request.post_data)  # the server's default until moved
    wait_for_hits(page, answer.value.json()["hits"])
    slider = page.locator("#voice-weight")
    assert page.locator("#voice-control").is_visible()
    default = page.evaluate("() => fetch('/collection').then(r => r.json()).then(c => c.defaults.voice_weight)")
    assert float(slider.input_value()) == pytest.approx(default)
    assert page.locator("#voice-weight-value").inner_text() == f"{round(default * 100)} % voice, {100 - round(default * 100)} % style"

    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        slider.focus()
        page.keyboard.press("End")  # all the way to voice
    sent = json.loads(answer.value.request.post_data)
    assert sent["clip_ids"] == [target] and sent["voice_weight"] == 1
    assert answer.value.status == 200
    # This collection was indexed without speaker vectors: the server says it ranked by style alone.
    assert answer.value.json()["voice_weight"] == 0.0
    assert parse_qs(urlparse(page.url).query)["voice"] == ["1"]
    assert page.locator("#voice-weight-value").inner_text() == "100 % voice, 0 % style"

    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.reload()
    assert json.loads(answer.value.request.post_data)["voice_weight"] == 1
    assert float(page.locator("#voice-weight").input_value()) == 1.0


def test_facets_are_facts_with_their_origin_and_distribution(page):
    text_search(page)
    info = page.evaluate("() => fetch('/collection').then(r => r.json())")
    facts = page.locator("#filters details.facet")
    keys = facts.evaluate_all("els => els.map(e => e.dataset.facet)")
    assert len(keys) == len(set(keys)) and "gender" in keys and "duration" in keys
    shown = page.locator("#filters [data-field]").evaluate_all("els => els.map(e => e.dataset.field)")
    for hidden in ("id", "source_path", "source_key", "global_caption", "fine_captions", "text", "content_hash"):
        assert hidden not in shown
    gender = page.locator("details[data-facet=gender]")
    gender.locator("summary").click()
    assert gender.locator(".facet-group[data-origin=declared] .origin").text_content() == "declared in the manifest"
    duration = page.locator("details[data-facet=duration]")
    duration.locator("summary").click()
    source = next(s for s in info["facets"]["duration"]["sources"] if s["field"] == "duration")
    measured = duration.locator(".facet-group[data-origin=measured] .facet-source[data-field=duration]")
    assert measured.locator(".histogram .bar").count() == len(source["histogram"]["counts"])
    assert "median" in measured.locator(".range-hint").inner_text()
