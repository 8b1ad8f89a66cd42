"""POST /export with curation options, through the real server: constraints hold in the streamed
lines, the summary header agrees with them, and out-of-range options are 422s naming the field."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import numpy as np

QUERY = "a clear female voice"


def _rows(r: httpx.Response) -> list[dict]:
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def _key(row: dict):
    return ("speaker", row["speaker"]) if row.get("speaker") else ("cluster", row["m_speaker_cluster"])


def test_export_honours_the_curation_options(curate_client: httpx.Client, curate_searcher) -> None:
    quality = sorted(r[0] for r in curate_searcher.cursor().execute("SELECT m_dnsmos_ovrl FROM clips").fetchall())
    q = quality[len(quality) // 3]
    body = {"query": QUERY, "n": 8, "min_quality": q, "max_per_speaker": 1, "diverse_speakers": True,
            "dedup_threshold": 0.999, "ranges": {"duration": {"min": 0.5}}}
    r = curate_client.post("/export", json=body)
    rows = _rows(r)
    assert rows and all(row["m_dnsmos_ovrl"] >= q and row["duration"] >= 0.5 for row in rows)
    assert max(Counter(_key(row) for row in rows).values()) == 1
    vecs = curate_searcher.collection.vectors("speech", [row["clip_id"] for row in rows])
    if len(rows) > 1:
        assert float((vecs @ vecs.T)[np.triu_indices(len(rows), 1)].max()) <= 0.999 + 1e-6
    summary = json.loads(r.headers["X-Curation-Summary"])
    assert summary["selected"] == len(rows) == int(r.headers["X-Result-Count"])
    assert summary["speakers"] == len(rows) and sum(summary["genders"].values()) == len(rows)
    assert summary["attributes"]["m_dnsmos_ovrl"]["min"] >= round(q, 3) - 1e-3
    many = _rows(curate_client.post("/export", json={"query": QUERY, "n": 30, "max_per_speaker": 2, "format": "jsonl"}))
    assert max(Counter(_key(row) for row in many).values()) <= 2


def test_export_without_options_is_unchanged(curate_client: httpx.Client) -> None:
    plain = _rows(curate_client.post("/export", json={"query": QUERY, "n": 5}))
    hits = curate_client.post("/search/text", json={"query": QUERY, "top_k": 5}).json()["hits"]
    assert [row["clip_id"] for row in plain] == [h["id"] for h in hits]


def test_bad_curation_options_are_422(curate_client: httpx.Client) -> None:
    for extra in ({"max_per_speaker": 0}, {"min_quality": 7}, {"dedup_threshold": 1.5},
                  {"ranges": {"m_snr_db": {"low": 3}}}):
        r = curate_client.post("/export", json={"query": QUERY, **extra})
        assert r.status_code == 422, (extra, r.text)
        assert r.json()["status"] == 422
    # The Range schema says a min above its max holds no value: the export is empty, not an error.
    r = curate_client.post("/export", json={"query": QUERY, "ranges": {"m_snr_db": {"min": 30, "max": 10}}})
    assert r.status_code == 200 and r.headers["X-Result-Count"] == "0" and r.text == ""
    r = curate_client.post("/export", json={"query": QUERY, "ranges": {"m_nothing": {"min": 1}}})
    assert r.status_code == 422 and "m_nothing" in r.json()["message"]
