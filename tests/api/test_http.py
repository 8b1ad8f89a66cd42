"""The HTTP API against a real uvicorn server on a real collection: every endpoint, every error."""

from __future__ import annotations

import io
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import soundfile as sf

WHISPER_QUERY = "someone whispering, a breathy hushed voice with no vocal cord sound"


def _ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["hits"]]


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and body["message"], body
    return body


def _wav(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def average_precision(ranked: list[int], relevant: set[int]) -> float:
    hits, total = 0, 0.0
    for n, cid in enumerate(ranked, start=1):
        if cid in relevant:
            hits += 1
            total += hits / n
    return total / max(1, len(relevant))


# ------------------------------------------------------------------------------------ health, collection
def test_health_and_collection(client: httpx.Client, searcher) -> None:
    assert client.get("/health").json() == {"status": "ok", "clips": 40, "model_id": searcher.collection.model_id}
    info = client.get("/collection").json()
    assert info["model_id"] == searcher.collection.model_id and info["counts"]["clips"] == 40
    declared = next(f for f in info["facets"]["gender"]["sources"] if f["field"] == "gender")
    assert declared["origin"] == "declared" and declared["kind"] == "category"
    genders = {v["value"]: v["count"] for v in declared["values"]}
    assert sum(genders.values()) == 40 and set(genders) <= {"female", "male"}
    duration = next(f for f in info["facets"]["duration"]["sources"] if f["field"] == "duration")
    assert duration["min"] <= duration["quantiles"]["p50"] <= duration["max"]
    assert sum(duration["histogram"]["counts"]) == 40 - duration["missing"]
    facet_fields = [s["field"] for f in info["facets"].values() for s in f["sources"]]
    assert set(facet_fields) <= set(info["columns"]) and len(facet_fields) == len(set(facet_fields))
    assert not {"id", "source_path", "source_key", "global_caption", "fine_captions", "text"} & set(facet_fields)
    assert info["columns"]["duration"]["type"] == "number" and "between" in info["columns"]["duration"]["operators"]
    assert "path" not in info and info["limits"]["max_top_k"] == 1000


# ------------------------------------------------------------------------------------ text search
def test_text_search_ranks_whispered_clips_above_chance(client: httpx.Client, searcher) -> None:
    con = searcher.cursor()
    whispered = {r[0] for r in con.execute("SELECT id FROM clips WHERE whisper").fetchall()}
    assert 0 < len(whispered) < 40
    chance = len(whispered) / 40  # the expected average precision of a random ranking, about
    for indexes in (["speech"], ["speech", "global", "fine"]):
        ranked = _ids(client.post("/search/text", json={"query": WHISPER_QUERY, "top_k": 40, "indexes": indexes}))
        assert sorted(ranked) == sorted(r[0] for r in con.execute("SELECT id FROM clips").fetchall())
        ap = average_precision(ranked, whispered)
        assert ap > 2 * chance, f"{indexes}: AP {ap:.2f} for whispered clips, chance {chance:.2f}"


def test_hits_say_why_they_matched(client: httpx.Client) -> None:
    body = client.post("/search/text", json={"query": "a slow deep male voice", "top_k": 5}).json()
    from searchengine.search import DEFAULT_FUSION

    assert body["indexes"] == ["speech", "global", "fine"] and body["fusion"] == DEFAULT_FUSION == "weighted"
    for hit in body["hits"]:
        assert hit["matched"] in hit["scores"] and hit["audio_url"] == f"/clips/{hit['id']}/audio"
        assert hit["caption"]["kind"] in ("global", "fine") and hit["caption"]["text"]
        assert hit["captions"]["global"] and hit["clip"]["id"] == hit["id"]
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_filters_narrow_including_selective_ones(client: httpx.Client, searcher) -> None:
    con = searcher.cursor()
    female = {r[0] for r in con.execute("SELECT id FROM clips WHERE gender = 'female'").fetchall()}
    ids = _ids(client.post("/search/text", json={"query": "a voice", "top_k": 40,
                                                 "filter": {"field": "gender", "op": "=", "value": "female"}}))
    assert set(ids) == female
    test_split = {r[0] for r in con.execute("SELECT id FROM clips WHERE split = 'test'").fetchall()}
    body = client.post("/search/text", json={"query": "a voice", "top_k": 10,
                                             "filter": {"field": "split", "op": "=", "value": "test"}}).json()
    assert {h["id"] for h in body["hits"]} == test_split and body["strategy"] == "selector"
    nested = {"and": [{"field": "duration", "op": ">", "value": 3},
                      {"or": [{"field": "gender", "op": "=", "value": "male"}, {"field": "whisper", "op": "=", "value": True}]}]}
    expect = {r[0] for r in con.execute("SELECT id FROM clips WHERE duration > 3 AND (gender = 'male' OR whisper)").fetchall()}
    assert set(_ids(client.post("/search/text", json={"query": "a voice", "top_k": 40, "filter": nested}))) == expect


def test_pagination_is_stable(client: httpx.Client) -> None:
    query = {"query": "a fast high-pitched woman on the telephone"}
    full = _ids(client.post("/search/text", json={**query, "top_k": 28}))
    pages = [_ids(client.post("/search/text", json={**query, "top_k": 7, "offset": o})) for o in range(0, 28, 7)]
    assert sum(pages, []) == full
    assert _ids(client.post("/search/text", json={**query, "top_k": 28})) == full
    assert _ids(client.post("/search/text", json={**query, "top_k": 5, "offset": 100})) == []


# ------------------------------------------------------------------------------------ audio search
def test_audio_search_by_clip_and_upload_excludes_the_query(client: httpx.Client, searcher) -> None:
    body = client.post("/search/audio", json={"clip_ids": [5], "top_k": 39}).json()
    assert 5 not in [h["id"] for h in body["hits"]] and len(body["hits"]) == 39 and body["excluded"] == [5]
    assert body["indexes"] == ["speech"]
    two = _ids(client.post("/search/audio", json={"clip_ids": [5, 6], "top_k": 10}))
    assert not {5, 6} & set(two)
    path = searcher.cursor().execute("SELECT source_path FROM clips WHERE id = 7").fetchone()[0]
    with open(path, "rb") as f:
        data = f.read()
    body = client.post("/search/audio", files={"file": ("q.wav", data, "audio/wav")}, data={"top_k": "5"}).json()
    assert 7 not in [h["id"] for h in body["hits"]] and body["excluded"] == [7]
    # The same voice, not byte-identical: nothing excluded, and the clip itself comes first.
    wave, rate = sf.read(path, dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, wave * 0.9, rate, format="FLAC")
    body = client.post("/search/audio", files={"file": ("q.flac", buf.getvalue(), "audio/flac")},
                       data={"top_k": "3", "filter": json.dumps({"field": "duration", "op": ">", "value": 0})}).json()
    assert body["excluded"] == [] and body["hits"][0]["id"] == 7


def test_bad_uploads_are_answered_clearly(client: httpx.Client) -> None:
    body = _error(client.post("/search/audio", files={"file": ("x.wav", b"RIFF not really a wav" * 50, "audio/wav")}), 415)
    assert "not readable audio" in body["message"] and "/tmp" not in body["message"]
    _error(client.post("/search/audio", files={"file": ("x.wav", b"", "audio/wav")}), 400)
    _error(client.post("/search/audio", files={"file": ("s.wav", _wav(0.01), "audio/wav")}), 400)  # too short
    _error(client.post("/search/audio", content=b"hello", headers={"content-type": "text/plain"}), 415)
    _error(client.post("/search/audio", files={"nofile": ("x.wav", _wav(1), "audio/wav")}), 422)
    _error(client.post("/search/audio", files={"file": ("x.wav", _wav(1), "audio/wav")}, data={"top_k": "0"}), 422)
    _error(client.post("/search/audio", files={"file": ("x.wav", _wav(1), "audio/wav")}, data={"filter": "{bad"}), 422)


def test_oversized_and_overlong_uploads_get_413(client: httpx.Client) -> None:
    big = b"\0" * (4 * 1024 * 1024)
    body = _error(client.post("/search/audio", files={"file": ("big.wav", big, "audio/wav")}), 413)
    assert "MB" in body["message"]
    long = _wav(61.0, rate=8000)  # under the byte limit, over the 60 s limit of the test server
    body = _error(client.post("/search/audio", files={"file": ("long.wav", long, "audio/wav")}), 413)
    assert "61.0 s" in body["message"]


def test_body_without_length_over_the_limit_is_refused(server) -> None:
    """A chunked upload has no Content-Length: the limit must hold while reading."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /search/audio HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        sock.sendall(b"%x\r\n" % len(head) + head + b"\r\n")
        chunk = b"x" * (1024 * 1024)
        try:
            for _ in range(8):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            pass  # the server may close the connection once it has answered
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


# ------------------------------------------------------------------------------------ clips and audio
def test_clip_metadata_and_unknown_clips(client: httpx.Client) -> None:
    body = client.get("/clips/3").json()
    assert body["id"] == 3 and body["captions"]["global"] and len(body["captions"]["fine"]) >= 1
    _error(client.get("/clips/99999"), 404)
    _error(client.get("/clips/99999/audio"), 404)
    _error(client.post("/search/audio", json={"clip_ids": [99999]}), 404)
    _error(client.get("/clips/abc"), 422)
    _error(client.get("/clips/-1"), 422)


def test_audio_with_range_requests(client: httpx.Client, searcher) -> None:
    full = client.get("/clips/3/audio")
    assert full.status_code == 200 and full.headers["content-type"] == "audio/wav"
    assert full.headers["accept-ranges"] == "bytes" and full.content[:4] == b"RIFF"
    wave, rate = sf.read(io.BytesIO(full.content))
    start, end = searcher.cursor().execute('SELECT "start", "end" FROM clips WHERE id = 3').fetchone()
    assert abs(len(wave) / rate - (end - start)) < 0.01
    size = len(full.content)
    part = client.get("/clips/3/audio", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == full.content[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{size}"
    tail = client.get("/clips/3/audio", headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == full.content[-500:]
    open_end = client.get("/clips/3/audio", headers={"Range": f"bytes={size - 10}-"})
    assert open_end.status_code == 206 and open_end.content == full.content[-10:]
    past = client.get("/clips/3/audio", headers={"Range": f"bytes={size + 5}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"


def test_nothing_outside_the_audio_roots_is_served(restricted) -> None:
    server, web = restricted
    with httpx.Client(base_url=server.url, timeout=30) as c:
        body = _error(c.get("/clips/3/audio"), 403)
        assert "outside" in body["message"]
        assert c.get("/").status_code == 200 and "clsp-search" in c.get("/").text
        for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
                     "/clips/..%2f..%2fetc%2fpasswd/audio", "/static/../../etc/passwd"):
            r = c.get(path)
            assert r.status_code in (404, 422) and "root:" not in r.text, (path, r.status_code)


# ------------------------------------------------------------------------------------ input errors
def test_input_errors_are_4xx_with_a_message(client: httpx.Client) -> None:
    # A filter is checked against the collection's columns as the published schema states them: 422.
    body = _error(client.post("/search/text", json={"query": "x", "filter": {"field": "nope", "op": "=", "value": 1}}), 422)
    assert "unknown field 'nope'" in body["message"] and body["error"] == "bad_filter"
    _error(client.post("/search/text", json={"query": "x", "filter": {"field": "duration", "op": ">", "value": "long"}}), 422)
    _error(client.post("/search/text", json={"query": "x", "filter": {"field": "duration", "op": "like", "value": 1}}), 422)
    assert "top_k" in _error(client.post("/search/text", json={"query": "x", "top_k": 100000}), 422)["message"]
    assert "query" in _error(client.post("/search/text", json={"query": ""}), 422)["message"]
    _error(client.post("/search/text", json={"query": "   "}), 422)
    _error(client.post("/search/text", json={"query": "x" * 1001}), 422)
    _error(client.post("/search/text", json={"query": "x", "top_k": "ten"}), 422)
    _error(client.post("/search/text", json={"query": "x", "indexes": ["speech", "lyrics"]}), 422)
    _error(client.post("/search/text", json={"query": "x", "unknown_option": 1}), 422)
    _error(client.post("/search/text", json={"query": "x", "top_k": "10"}), 422)  # strict: the schema says integer
    _error(client.post("/search/text", content=b"{not json", headers={"content-type": "application/json"}), 400)
    _error(client.post("/search/text", content=b"query=x", headers={"content-type": "text/plain"}), 415)
    _error(client.post("/search/audio", content=b"{not json", headers={"content-type": "application/json"}), 400)
    _error(client.post("/search/audio", json={"clip_ids": []}), 422)
    _error(client.get("/nowhere"), 404)


def test_sql_injection_in_filters_is_harmless(client: httpx.Client) -> None:
    for value in ("female' OR '1'='1", "x'; DROP TABLE clips; --", "%", "female\" OR \"1\"=\"1"):
        body = client.post("/search/text", json={"query": "a voice", "top_k": 40,
                                                 "filter": {"field": "gender", "op": "=", "value": value}}).json()
        assert body["hits"] == [] and body["candidates"] == 0
    body = client.post("/search/text", json={"query": "a voice", "top_k": 40,
                                             "filter": {"field": "gender", "op": "contains", "value": "%"}}).json()
    assert body["hits"] == []
    _error(client.post("/search/text", json={"query": "x", "filter": {
        "field": 'gender" = "gender" OR "1', "op": "=", "value": "x"}}), 422)
    assert client.get("/health").json()["clips"] == 40


# ------------------------------------------------------------------------------------ classify, similarity
def test_classify_clips_and_uploads(client: httpx.Client, searcher) -> None:
    body = client.post("/classify", json={"clip_ids": [1, 2], "labels": ["whispering", "normal"]}).json()
    assert [r["clip_id"] for r in body["results"]] == [1, 2]
    for r in body["results"]:
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-4 and r["label"] in ("whispering", "normal")
    path = searcher.cursor().execute("SELECT source_path FROM clips WHERE id = 1").fetchone()[0]
    with open(path, "rb") as f:
        up = client.post("/classify", files={"file": ("a.wav", f.read(), "audio/wav")},
                         data={"labels": ["whispering", "normal"]}).json()  # one form field per label
    assert up["results"][0]["clip_id"] is None
    assert abs(up["results"][0]["probabilities"]["whispering"] - body["results"][0]["probabilities"]["whispering"]) < 0.05
    _error(client.post("/classify", json={"clip_ids": [1], "labels": ["a"], "template": "{0.__class__.__mro__}"}), 422)
    _error(client.post("/classify", json={"clip_ids": [1], "labels": []}), 422)
    _error(client.post("/classify", json={"clip_ids": [424242], "labels": ["a"]}), 404)


def test_similarity(client: httpx.Client, searcher) -> None:
    same = client.post("/similarity", json={"a": 4, "b": 4}).json()
    assert abs(same["similarity"] - 1.0) < 1e-5
    ab = client.post("/similarity", json={"a": 4, "b": 9}).json()
    ba = client.post("/similarity", json={"a": 9, "b": 4}).json()
    assert ab == ba and 0 <= ab["similarity"] <= 1
    path = searcher.cursor().execute("SELECT source_path FROM clips WHERE id = 9").fetchone()[0]
    with open(path, "rb") as f:
        mixed = client.post("/similarity", files={"b": ("b.wav", f.read(), "audio/wav")}, data={"a_id": "4"}).json()
    assert abs(mixed["similarity"] - ab["similarity"]) < 0.02
    _error(client.post("/similarity", json={"a": 4, "b": 99999}), 404)
    _error(client.post("/similarity", json={"a": 4}), 422)
    _error(client.post("/similarity", data={"a_id": "four", "b_id": "4"}, files={"x": ("x", b"1")}), 422)
    _error(client.post("/similarity", data={"a_id": "4", "b_id": "5"}, files={"b": ("b.wav", _wav(1), "audio/wav")}),
           422)  # b given twice


# ------------------------------------------------------------------------------------ export
def test_export_jsonl_and_csv(client: httpx.Client) -> None:
    query = "a calm older man"
    ranked = client.post("/search/text", json={"query": query, "top_k": 6}).json()["hits"]
    r = client.post("/export", json={"query": query, "n": 6})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [row["clip_id"] for row in rows] == [h["id"] for h in ranked]
    assert [row["path"] for row in rows] == [h["clip"]["source_path"] for h in ranked]
    assert all(row["global_caption"] and isinstance(row["fine_captions"], list) for row in rows)
    csv = client.post("/export", json={"query": query, "n": 6, "format": "csv",
                                       "filter": {"field": "gender", "op": "=", "value": "male"}})
    lines = csv.text.splitlines()
    assert lines[0].startswith("id,path,start,end") and len(lines) <= 7
    import csv as csvmod

    parsed = list(csvmod.DictReader(io.StringIO(csv.text)))
    assert parsed and all(p["gender"] == "male" for p in parsed)
    _error(client.post("/export", json={"query": query, "n": 10**6}), 422)
    _error(client.post("/export", json={"query": query, "format": "xml"}), 422)


def test_export_picked_ids_of_an_audio_search(client: httpx.Client) -> None:
    """A selection from any result list (here "more like this") exports as it is: those clips, in that
    order, with the scores and ranks the caller showed; nothing is re-searched."""
    hits = client.post("/search/audio", json={"clip_ids": [3], "top_k": 8}).json()["hits"]
    picked = [hits[4], hits[1], hits[6]]
    body = {"ids": [{"id": h["id"], "score": h["score"], "rank": h["rank"]} for h in picked]}
    r = client.post("/export", json=body)
    assert r.status_code == 200 and r.headers["x-result-count"] == "3"
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [row["clip_id"] for row in rows] == [h["id"] for h in picked]
    assert [(row["rank"], row["score"]) for row in rows] == [(h["rank"], h["score"]) for h in picked]
    assert [row["fine_captions"] for row in rows] == [h["captions"]["fine"] for h in picked]
    plain = [json.loads(line) for line in client.post("/export", json={"ids": [7, 2]}).text.splitlines()]
    assert [(row["clip_id"], row["rank"]) for row in plain] == [(7, 1), (2, 2)]
    mixed = client.post("/export", json={"ids": [7, {"id": 2, "score": 0.25, "rank": 9}]}).text.splitlines()
    assert [(r["clip_id"], r["rank"], r["score"]) for r in map(json.loads, mixed)] == [(7, 1, None), (2, 9, 0.25)]
    assert _error(client.post("/export", json={"ids": [2, 999999]}), 404)
    for bad in ({"ids": [2], "query": "a man"}, {}, {"ids": [2], "min_quality": 3.0},
                {"ids": [{"id": 3, "score": 0.5}]}, {"ids": [{"id": 3, "rank": 0, "score": 0.5}]},
                {"query": "a man", "ranks": [1]}, {"ids": []}):
        _error(client.post("/export", json=bad), 422)


# ------------------------------------------------------------------------------------ concurrency
def test_concurrent_requests_all_answered(client: httpx.Client, server) -> None:
    def one(i: int) -> int:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            if i % 3 == 0:
                return c.post("/search/audio", json={"clip_ids": [1 + i % 40], "top_k": 5}).status_code
            return c.post("/search/text", json={"query": f"voice number {i}", "top_k": 5}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(24))) == {200}


def test_openapi_documents_every_endpoint(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/search/text", "/search/audio", "/clips/{clip_id}", "/clips/{clip_id}/audio", "/classify",
              "/similarity", "/export", "/collection", "/health"):
        assert p in paths
    assert "multipart/form-data" in paths["/search/audio"]["post"]["requestBody"]["content"]


def test_an_m4a_upload_finds_the_clip_it_was_made_from(client: httpx.Client, searcher, tmp_path) -> None:
    """Uploads accept what the indexer reads: an AAC re-encoding of clip 7 ranks clip 7 first."""
    from fractions import Fraction

    import av

    path = searcher.cursor().execute("SELECT source_path FROM clips WHERE id = 7").fetchone()[0]
    wave, rate = sf.read(path, dtype="float32", always_2d=True)
    target = tmp_path / "q.m4a"
    with av.open(str(target), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout="mono")
        planar = np.ascontiguousarray(wave.T[:1])
        for i in range(0, planar.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i : i + 1024]), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    body = client.post("/search/audio", files={"file": ("q.m4a", target.read_bytes(), "audio/mp4")},
                       data={"top_k": "3"}).json()
    assert body["hits"][0]["id"] == 7
