"""What the HTTP API asks a Searcher instead of writing SQL itself: clip count, a clip's audio
source, the collection's source paths; and the one page-size ceiling the API and CLI share."""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.search import MAX_PAGE_TOP_K, MAX_TOP_K, AudioSource, Searcher, SearchError, SearchOptions
from searchengine.store import Collection

DIM = 8


@pytest.fixture(scope="module")
def searcher(tmp_path_factory) -> Searcher:
    x = np.random.default_rng(0).standard_normal((5, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    path = tmp_path_factory.mktemp("facts") / "c"
    coll = Collection.create(path, model_id="synthetic@0", dim=DIM)
    clips = [{"source_key": f"k{i}", "source_path": f"/data/{i % 2}.wav", "start": float(i), "end": float(i) + 0.5,
              "duration": 0.5} for i in range(4)]
    clips.append({"source_key": "whole", "source_path": "/data/o'brien \"x\".wav", "duration": 2.0})
    coll.add(clips, x)
    coll.close()
    s = Searcher(Collection.open(path, read_only=True), encoder=None)
    yield s
    s.close()


def test_clip_count(searcher: Searcher) -> None:
    assert searcher.clip_count() == 5
    con = searcher.cursor()
    assert searcher.clip_count(con) == 5
    con.close()


def test_audio_source_of_a_segment_a_whole_file_and_a_missing_clip(searcher: Searcher) -> None:
    assert searcher.audio_source(2) == AudioSource("/data/1.wav", 1.0, 1.5)
    path, start, end = searcher.audio_source(5)
    assert (path, start, end) == ("/data/o'brien \"x\".wav", None, None)
    assert searcher.audio_source(99) is None


def test_source_paths_are_distinct(searcher: Searcher) -> None:
    assert sorted(searcher.source_paths()) == ["/data/0.wav", "/data/1.wav", "/data/o'brien \"x\".wav"]


def test_page_ceiling_is_below_the_core_ceiling() -> None:
    assert MAX_PAGE_TOP_K == 1000 and MAX_PAGE_TOP_K <= MAX_TOP_K
    SearchOptions(top_k=MAX_TOP_K).validated()
    with pytest.raises(SearchError):
        SearchOptions(top_k=MAX_TOP_K + 1).validated()
