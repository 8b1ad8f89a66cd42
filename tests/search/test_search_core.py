"""Search over a real collection of synthetic vectors: IDSelector filtering, pagination, exclusion,
fusion. Vectors are synthetic so that the right answer is known exactly (brute force), and no model
is needed: these tests check the search machinery, the HTTP tests check it with the real model."""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.fusion import contributions
from searchengine.search import Searcher, SearchOptions, rrf, search_ids, weighted_sum
from searchengine.store import Caption, Collection

N = 3000
DIM = 32


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def searcher(tmp_path_factory) -> Searcher:
    rng = np.random.default_rng(0)
    vectors = _unit(rng.normal(size=(N, DIM)))
    vectors[100:110] = vectors[99]  # ten exact duplicates: equal scores, order must come from ids
    path = tmp_path_factory.mktemp("synthetic") / "c"
    coll = Collection.create(path, model_id="synthetic@0", dim=DIM)
    clips = [{"source_key": f"k{i}", "source_path": f"/data/{i}.wav", "duration": float(i % 10),
              "bucket": int(i % 100), "gender": "female" if i % 2 else "male"} for i in range(N)]
    captions = [Caption(i, "global", f"caption {i}") for i in range(0, N, 3)]
    cap_vectors = _unit(vectors[[c.clip for c in captions]] + 0.3 * rng.normal(size=(len(captions), DIM)))
    coll.add(clips, vectors, captions, cap_vectors)
    coll.close()
    s = Searcher(Collection.open(path, read_only=True), encoder=None)
    s.vectors_for_test = vectors  # the truth the brute-force checks compare with
    return s


def _brute(s: Searcher, q: np.ndarray, allowed: np.ndarray, k: int) -> list[int]:
    scores = s.vectors_for_test[allowed - 1] @ q  # clip ids start at 1
    order = sorted(range(len(allowed)), key=lambda i: (-scores[i], allowed[i]))
    return [int(allowed[i]) for i in order[:k]]


def test_filter_keeping_one_percent_still_fills_the_page(searcher: Searcher) -> None:
    q = _unit(np.random.default_rng(1).normal(size=DIM))
    spec = {"field": "bucket", "op": "=", "value": 7}  # 30 of 3000 clips
    page = searcher.search_vector(q, SearchOptions(top_k=20, filter=spec, indexes=("speech",)))
    allowed = searcher.filter_ids(spec)
    assert len(allowed) == N // 100
    assert page.strategy == "selector" and page.candidates == len(allowed)
    assert [h.id for h in page.hits] == _brute(searcher, q, allowed, 20)
    assert all(h.clip["bucket"] == 7 for h in page.hits)


def test_selector_and_overfetch_agree(searcher: Searcher) -> None:
    q = _unit(np.random.default_rng(2).normal(size=DIM))
    for spec in ({"field": "bucket", "op": "<", "value": 3}, {"field": "gender", "op": "=", "value": "female"}):
        pages = {s: searcher.search_vector(q, SearchOptions(top_k=25, filter=spec, indexes=("speech",), strategy=s))
                 for s in ("selector", "overfetch")}
        assert pages["selector"].strategy == "selector" and pages["overfetch"].strategy == "overfetch"
        assert [h.id for h in pages["selector"].hits] == [h.id for h in pages["overfetch"].hits]
        assert [h.id for h in pages["selector"].hits] == _brute(searcher, q, searcher.filter_ids(spec), 25)


def test_pages_are_stable_and_ties_ordered_by_id(searcher: Searcher) -> None:
    q = searcher.vectors_for_test[99]  # clips 100..111 (ids) all score 1.0
    full = searcher.search_vector(q, SearchOptions(top_k=40, indexes=("speech",)))
    assert [h.id for h in full.hits[:11]] == list(range(100, 111))
    paged = [h.id for off in range(0, 40, 7)
             for h in searcher.search_vector(q, SearchOptions(top_k=7, offset=off, indexes=("speech",))).hits]
    assert paged[:40] == [h.id for h in full.hits]
    again = searcher.search_vector(q, SearchOptions(top_k=40, indexes=("speech",)))
    assert [h.id for h in again.hits] == [h.id for h in full.hits]
    assert [h.rank for h in full.hits] == list(range(1, 41))


def test_query_by_clips_excludes_them(searcher: Searcher) -> None:
    page = searcher.search_clips([100], SearchOptions(top_k=12))
    ids = [h.id for h in page.hits]
    assert 100 not in ids and ids[:10] == [101, 102, 103, 104, 105, 106, 107, 108, 109, 110]
    assert page.indexes == ["speech"] and page.excluded == [100]
    filtered = searcher.search_clips([100], SearchOptions(top_k=5, filter={"field": "bucket", "op": "=", "value": 0}))
    assert 100 not in [h.id for h in filtered.hits] and len(filtered.hits) == 5


def test_fused_text_search_maps_captions_to_clips(searcher: Searcher) -> None:
    q = searcher.vectors_for_test[300]  # clip id 301; clip index 300 has a global caption
    for fusion in ("rrf", "weighted"):
        page = searcher.search_vector(q, SearchOptions(top_k=5, indexes=("speech", "global"), fusion=fusion))
        top = page.hits[0]
        assert top.id == 301 and set(top.scores) == {"speech", "global"}
        assert top.caption == {"id": top.caption["id"], "kind": "global", "text": "caption 300"}
        assert len({h.id for h in page.hits}) == len(page.hits)  # each clip once


def test_fusion_functions() -> None:
    lists = {"speech": {1: (0.9, None), 2: (0.8, None)}, "global": {2: (0.95, 7), 3: (0.5, 8)}}
    fused = rrf(lists, {"speech": 1.0, "global": 1.0})
    assert max(fused, key=fused.get) == 2 and fused[1] == pytest.approx(1 / 61)
    ws = weighted_sum(lists, {"speech": 1.0, "global": 1.0})
    assert ws[2] == pytest.approx((0.8 + 0.95) / 2) and ws[1] == pytest.approx(0.9)
    tied = {"speech": {1: (0.9, None), 2: (0.7, None), 3: (0.9, None), 4: (0.2, None)}}
    assert contributions(tied)["speech"] == {1: 1 / 61, 3: 1 / 61, 2: 1 / 63, 4: 1 / 64}  # ties share a rank


def test_search_ids_handles_empty_and_exhausted(searcher: Searcher) -> None:
    index = searcher.collection.index("speech")
    q = searcher.vectors_for_test[0]
    s, i, used = search_ids(index, q, 10, np.zeros(0, np.int64))
    assert len(i) == 0
    s, i, used = search_ids(index, q, 10, np.array([5, 9], np.int64), strategy="overfetch")
    assert sorted(i.tolist()) == [5, 9] and used == "overfetch"


def test_clip_records_come_from_the_cache_as_copies(searcher: Searcher) -> None:
    first = searcher.clips([1, 4, 2])  # clip 1 holds caption "caption 0" (ids start at 1)
    assert list(first) == [1, 4, 2] and first[1]["captions"] == {"global": "caption 0", "fine": []}
    first[1]["clip"]["gender"] = "edited"
    first[1]["captions"]["fine"].append("edited")
    again = searcher.clips([2, 1, 999_999])  # an unknown id is left out, as before
    assert list(again) == [2, 1]
    assert again[1]["clip"]["gender"] == "male" and again[1]["captions"]["fine"] == []
    assert again[1]["clip"] == {**first[1]["clip"], "gender": "male"}


def test_lru_keeps_the_most_recently_used() -> None:
    from searchengine.lru import LruCache

    cache = LruCache(2)
    cache.put_many({"a": 1, "b": 2})
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "c": 3} and len(cache) == 2
    nothing = LruCache(0)
    nothing.put("a", 1)
    assert nothing.get("a") is None
