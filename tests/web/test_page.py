"""The search page in a real browser: search, listen, filter, upload, record, find similar, export."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.timeout(300)

QUERY = "a deep male voice far from the microphone"


def hit_ids(page) -> list[int]:
    return [int(x) for x in page.locator("li.hit").evaluate_all("els => els.map(e => e.dataset.clipId)")]


def wait_for_hits(page, hits: list[dict]) -> None:
    """Until the page lists exactly these hits, in this order."""
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('li.hit')].map(e => +e.dataset.clipId)) === JSON.stringify(ids)",
        arg=[h["id"] for h in hits])


def text_search(page, query: str = QUERY) -> dict:
    """Type a description and press Enter; the parsed /search/text answer once its results are shown."""
    page.goto("/")
    page.get_by_label("Describe a voice").fill(query)
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.get_by_label("Describe a voice").press("Enter")
    body = answer.value.json()
    assert answer.value.status == 200, body
    wait_for_hits(page, body["hits"])
    return body


def test_text_search_shows_results_that_play(page, artifacts: Path):
    body = text_search(page)
    assert body["hits"], "the search found nothing"
    assert hit_ids(page) == [h["id"] for h in body["hits"]]
    first = page.locator("li.hit").first
    assert first.locator("h3").inner_text() == body["hits"][0]["captions"]["global"]
    assert first.locator(".chip").count() > 0
    assert first.locator(".transcript").inner_text() == f"Transcript: {body['hits'][0]['clip']['transcript']}"
    assert "fine-grained caption" in first.locator("details.fine summary").inner_text()
    assert not first.locator("details.fine").evaluate("d => d.open")
    first.locator("details.fine summary").click()
    assert first.locator("details.fine li").count() == len(body["hits"][0]["captions"]["fine"])
    assert parse_qs(urlparse(page.url).query)["q"] == [QUERY]

    audio = first.locator("audio")
    state = audio.evaluate(
        """a => new Promise((resolve, reject) => {
             a.addEventListener('playing', () => resolve('playing'), {once: true});
             a.addEventListener('error', () => reject(new Error('media error ' + (a.error && a.error.code))), {once: true});
             a.play().catch(reject);
           })"""
    )
    assert state == "playing"
    page.wait_for_function("a => a.currentTime > 0.2", arg=audio.element_handle())
    # The player holds exactly the clip (a segment is served as its span only) and can seek.
    duration = audio.evaluate("a => a.duration")
    assert duration == pytest.approx(body["hits"][0]["clip"]["duration"], abs=0.05)
    audio.evaluate("a => { a.currentTime = a.duration / 2; }")
    page.wait_for_function("a => !a.seeking && a.currentTime >= a.duration / 2 - 0.1", arg=audio.element_handle())
    audio.evaluate("a => a.pause()")
    page.wait_for_selector("li.hit:first-child canvas.wave[data-state=drawn]")
    page.screenshot(path=str(artifacts / "web-results.png"))

    # The URL carries the search: a reload shows the same results.
    page.reload()
    page.wait_for_function("n => document.querySelectorAll('li.hit').length === n", arg=len(body["hits"]))
    assert hit_ids(page) == [h["id"] for h in body["hits"]]
    assert page.get_by_label("Describe a voice").input_value() == QUERY


def test_show_more_appends_the_next_page(page):
    first = text_search(page)
    assert first["candidates"] > len(first["hits"])
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.get_by_role("button", name="Show more results").click()
    sent = json.loads(answer.value.request.post_data)
    assert sent["offset"] == len(first["hits"])
    second = answer.value.json()
    wait_for_hits(page, first["hits"] + second["hits"])
    assert [h["rank"] for h in second["hits"]][0] == len(first["hits"]) + 1


def test_example_query_is_a_button_that_searches(page):
    page.goto("/")
    example = page.locator("button.example").first
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        example.focus()
        page.keyboard.press("Enter")
    assert json.loads(answer.value.request.post_data)["query"] == example.inner_text()
    page.wait_for_selector("li.hit")


def test_a_filter_narrows_the_results(page, artifacts: Path):
    unfiltered = text_search(page)
    facet = page.locator("details[data-facet=gender]")
    facet.locator("summary").click()
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        facet.get_by_label("female").check()
    body = answer.value.json()
    sent = json.loads(answer.value.request.post_data)
    assert sent["filter"] == [{"field": "gender", "op": "in", "value": ["female"]}]
    assert 0 < body["candidates"] < unfiltered["candidates"]
    assert body["hits"] and all(h["clip"]["gender"] == "female" for h in body["hits"])
    wait_for_hits(page, body["hits"])
    assert parse_qs(urlparse(page.url).query)["c.gender"] == ["female"]

    # A range narrows further; both survive a reload.
    lo = sorted(h["clip"]["duration"] for h in body["hits"])[len(body["hits"]) // 2]
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.locator("details[data-facet=duration] summary").click()
        page.locator("#f-min-duration").fill(f"{lo:.2f}")
        page.locator("#f-min-duration").press("Enter")
    ranged = answer.value.json()
    assert ranged["candidates"] < body["candidates"]
    assert all(h["clip"]["duration"] >= float(f"{lo:.2f}") and h["clip"]["gender"] == "female" for h in ranged["hits"])
    page.wait_for_function("n => document.querySelectorAll('li.hit').length === n", arg=len(ranged["hits"]))
    page.screenshot(path=str(artifacts / "web-filtered.png"))
    with page.expect_response(lambda r: r.url.endswith("/search/text")) as answer:
        page.reload()
    assert answer.value.json()["candidates"] == ranged["candidates"]
    assert page.locator("details[data-facet=gender]").get_by_label("female").is_checked()
    assert float(page.locator("#f-min-duration").input_value()) == float(f"{lo:.2f}")


def test_loading_state(page, artifacts: Path):
    held: list = []
    page.route("**/search/text", lambda route: held.append(route))  # hold the request until the loading state is checked
    page.goto("/")
    page.get_by_label("Describe a voice").fill(QUERY)
    page.get_by_label("Describe a voice").press("Enter")
    page.wait_for_function("() => document.querySelector('section.results').getAttribute('aria-busy') === 'true'")
    assert page.get_by_role("status").inner_text() == "Searching…"
    page.screenshot(path=str(artifacts / "web-loading.png"))
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector("li.hit")
    assert page.locator("section.results").get_attribute("aria-busy") == "false"


def test_no_results_state(page, artifacts: Path):
    text_search(page)
    with page.expect_response(lambda r: r.url.endswith("/search/text")):
        page.locator("details[data-facet=duration] summary").click()
        page.locator("#f-min-duration").fill("100000")
        page.locator("#f-min-duration").press("Enter")
    page.wait_for_selector("#empty:not([hidden])")
    assert "No clips match" in page.locator("#empty").inner_text()
    assert page.locator("li.hit").count() == 0
    page.screenshot(path=str(artifacts / "web-no-results.png"))


def test_upload_search(page, corpus: Path, artifacts: Path):
    wav = sorted((corpus / "audio").glob("*.wav"))[3]
    page.goto("/")
    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.locator("#file").set_input_files(str(wav))
    body = answer.value.json()
    assert answer.value.status == 200, body
    assert body["hits"]
    # The uploaded file is a clip of the collection: it is recognised and left out of its own results.
    assert len(body["excluded"]) == 1 and body["excluded"][0] not in [h["id"] for h in body["hits"]]
    page.wait_for_function("n => document.querySelectorAll('li.hit').length === n", arg=len(body["hits"]))
    assert wav.name in page.locator("#current-query").inner_text()
    page.screenshot(path=str(artifacts / "web-upload.png"))

    # The same by drag and drop onto the search panel.
    other = sorted((corpus / "audio").glob("*.wav"))[7]
    transfer = page.evaluate_handle(
        """([name, bytes]) => { const t = new DataTransfer();
             t.items.add(new File([new Uint8Array(bytes)], name, {type: 'audio/wav'})); return t; }""",
        [other.name, list(other.read_bytes())],
    )
    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    assert answer.value.status == 200
    page.wait_for_function("name => document.querySelector('#current-query').textContent.includes(name)", arg=other.name)


def test_recording_search(page):
    page.goto("/")
    page.get_by_role("button", name="Record", exact=True).click()
    page.wait_for_function("() => document.querySelector('#record').getAttribute('aria-pressed') === 'true'")
    page.wait_for_timeout(1500)
    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.locator("#record").click()
    assert answer.value.status == 200, answer.value.text()
    page.wait_for_selector("li.hit")
    assert "recording.wav" in page.locator("#current-query").inner_text()


def test_more_like_this(page, artifacts: Path):
    body = text_search(page)
    target = body["hits"][1]["id"]
    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.locator(f"li.hit[data-clip-id='{target}'] button.more-like").click()
    assert json.loads(answer.value.request.post_data)["clip_ids"] == [target]
    similar = answer.value.json()
    assert similar["hits"] and target not in [h["id"] for h in similar["hits"]]
    wait_for_hits(page, similar["hits"])
    assert f"clip {target}" in page.locator("#current-query").inner_text()
    assert parse_qs(urlparse(page.url).query)["like"] == [str(target)]
    page.screenshot(path=str(artifacts / "web-more-like-this.png"))
    page.go_back()  # history: back to the text search
    page.wait_for_function("q => document.querySelector('#q').value === q", arg=QUERY)
    page.wait_for_function("id => document.querySelector('li.hit:first-child')?.dataset.clipId == id", arg=body["hits"][0]["id"])


def test_export_downloads_the_selected_rows(page, tmp_path: Path):
    body = text_search(page)
    chosen = [body["hits"][0]["id"], body["hits"][2]["id"], body["hits"][5]["id"]]
    for cid in chosen:
        page.locator(f"#select-{cid}").check()
    assert page.locator("#selected-count").inner_text() == "3 selected"

    with page.expect_download() as download:
        page.get_by_role("button", name="Export selection").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.suffix == ".jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["clip_id"] for r in rows] == chosen
    by_id = {h["id"]: h for h in body["hits"]}
    for row in rows:
        hit = by_id[row["clip_id"]]
        assert row["global_caption"] == hit["captions"]["global"]
        assert row["fine_captions"] == hit["captions"]["fine"]
        assert row["rank"] == hit["rank"]
        assert Path(row["path"]).name == Path(hit["clip"]["source_path"]).name
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('Exported 3 rows')")

    page.get_by_label("Export as").select_option("csv")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export selection").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.suffix == ".csv"
    table = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [int(r["clip_id"]) for r in table] == chosen
    assert json.loads(table[0]["fine_captions"]) == by_id[chosen[0]]["captions"]["fine"]

    with page.expect_download() as download:
        page.get_by_role("button", name="Export all results").click()
    path = tmp_path / "all.csv"
    download.value.save_as(path)
    table = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [int(r["clip_id"]) for r in table] == [h["id"] for h in body["hits"]]

    # The trainer formats: NeMo lines, and the LJSpeech zip (a binary download), with the transcripts.
    page.get_by_label("Export as").select_option("nemo")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export selection").click()
    assert download.value.suggested_filename.endswith(".nemo.json")
    download.value.save_as(tmp_path / "nemo.json")
    lines = [json.loads(line) for line in (tmp_path / "nemo.json").read_text().splitlines()]
    assert [line["text"] for line in lines] == [by_id[c]["clip"]["transcript"] for c in chosen]
    page.get_by_label("Export as").select_option("ljspeech")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export selection").click()
    assert download.value.suggested_filename.endswith(".ljspeech.zip")
    download.value.save_as(tmp_path / "lj.zip")
    with zipfile.ZipFile(tmp_path / "lj.zip") as z:
        meta = [line.split("|") for line in z.read("metadata.csv").decode().splitlines()]
        assert [m[1] for m in meta] == [by_id[c]["clip"]["transcript"] for c in chosen]
        assert all(f"wavs/{m[0]}.wav" in z.namelist() for m in meta)
    page.wait_for_function("() => document.querySelector('#status').textContent.includes('Exported 3 rows as LJSpeech')")


def test_export_after_more_like_this(page, tmp_path: Path):
    """Results of an audio query ("more like this") export like any others: the ticked rows, as shown."""
    body = text_search(page)
    target = body["hits"][0]["id"]
    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.locator(f"li.hit[data-clip-id='{target}'] button.more-like").click()
    similar = answer.value.json()["hits"]
    wait_for_hits(page, similar)
    chosen = [similar[1]["id"], similar[3]["id"]]
    for cid in chosen:
        page.locator(f"#select-{cid}").check()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export selection").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["clip_id"] for r in rows] == chosen
    assert [r["rank"] for r in rows] == [similar[1]["rank"], similar[3]["rank"]]
    assert target not in [r["clip_id"] for r in rows]


def test_a_bad_upload_shows_the_error(page, tmp_path: Path, artifacts: Path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio at all" * 20)
    page.goto("/")
    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.locator("#file").set_input_files(str(broken))
    assert answer.value.status in (400, 415)
    message = answer.value.json()["message"]
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Upload rejected" in alert.inner_text()
    assert message in alert.inner_text()
    assert page.locator("li.hit").count() == 0
    page.screenshot(path=str(artifacts / "web-upload-rejected.png"))

    # A file that is not audio at all is refused before it is sent.
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.locator("#file").set_input_files(str(notes))
    page.wait_for_function("() => document.querySelector('[role=alert]').textContent.includes('notes.txt is not an audio file')")
    assert not any(u.endswith("/search/audio") for u in requests)


def test_server_error_message_is_shown(page):
    """A clip id that does not exist (a stale shared link): the API's 404 message reaches the page."""
    with page.expect_response(lambda r: r.url.endswith("/search/audio")) as answer:
        page.goto("/?like=987654")
    assert answer.value.status == 404
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert answer.value.json()["message"] in alert.inner_text()


def test_keyboard_and_phone_width(page, artifacts: Path):
    page.set_viewport_size({"width": 390, "height": 844})
    text_search(page)
    # Everything fits the width: no horizontal scrolling.
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert not page.locator("#filters-panel").evaluate("d => d.open")
    page.screenshot(path=str(artifacts / "web-phone.png"), full_page=False)
    # Tab from the search box reaches the search button, then the examples.
    page.get_by_label("Describe a voice").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Search"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.classList.contains('example')")
