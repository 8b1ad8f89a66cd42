"""Text queries arriving together at the server each get the answer they would have got alone (the
request threads share the encoder, its ONNX session, FAISS and the clip-record cache)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

QUERIES = [f"{style} speaker {i}" for i, style in enumerate(
    ["a whispering", "a loud fast", "a slow deep", "a high-pitched", "a calm", "an angry", "a tired", "a clear"])]


def test_concurrent_text_queries_each_get_their_own_answer(client: httpx.Client, server, searcher) -> None:
    alone = {q: client.post("/search/text", json={"query": q, "top_k": 5}).json() for q in QUERIES}
    searcher.encoder.text_cache.clear()  # the concurrent round must encode, not read the cache
    start = threading.Barrier(len(QUERIES))

    def ask(query: str) -> dict:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            start.wait()
            response = c.post("/search/text", json={"query": query, "top_k": 5})
            response.raise_for_status()
            return response.json()

    with ThreadPoolExecutor(len(QUERIES)) as pool:
        together = dict(zip(QUERIES, pool.map(ask, QUERIES), strict=True))
    for query in QUERIES:
        got, want = together[query]["hits"], alone[query]["hits"]
        assert [h["id"] for h in got] == [h["id"] for h in want], query
        assert max(abs(a["score"] - b["score"]) for a, b in zip(got, want, strict=True)) < 1e-4, query
