"""The selection functions on hand-made ranked lists, where the right answer is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.curate import (
    Constraints,
    CurationError,
    combine_filters,
    constraint_filter,
    parse_range,
    round_robin,
    select,
    speaker_key,
)
from searchengine.search import Hit


def _hits(speakers: list[str | None], clusters: list[int | None] | None = None) -> list[Hit]:
    clusters = clusters or [None] * len(speakers)
    return [Hit(id=i, rank=i + 1, score=1.0 - i / 100, matched="speech", scores={}, caption=None,
                clip={"speaker": s, "m_speaker_cluster": c})
            for i, (s, c) in enumerate(zip(speakers, clusters, strict=True))]


def test_speaker_key_prefers_manifest_speaker_then_cluster_then_the_clip() -> None:
    a, b, c = _hits(["ann", None, ""], [7, 7, None])
    assert speaker_key(a) == ("speaker", "ann")
    assert speaker_key(b) == ("cluster", 7)
    assert speaker_key(c) == ("clip", 2)


def _ids(hits: list[Hit], constraints: Constraints, vectors: np.ndarray | None = None) -> list[int]:
    lookup = None if vectors is None else (lambda ids: vectors[list(ids)])
    return [h.id for h in select(hits, len(hits), constraints, lookup)[0]]


def test_round_robin_and_cap_keep_rank_order_within_a_speaker() -> None:
    hits = _hits(["a", "a", "a", "b", "c", "b"])
    assert [h.id for h in round_robin(hits)] == [0, 3, 4, 1, 5, 2]
    assert _ids(hits, Constraints(max_per_speaker=1)) == [0, 3, 4]
    assert _ids(hits, Constraints(max_per_speaker=2)) == [0, 1, 3, 4, 5]


def test_near_duplicates_are_dropped_greedily_in_rank_order() -> None:
    hits = _hits(["a", "b", "c", "d"])
    v = np.array([[1, 0], [0.99, 0.141], [0, 1], [0.6, 0.8]], np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert _ids(hits, Constraints(dedup_threshold=0.9), v) == [0, 2, 3]
    assert _ids(hits, Constraints(dedup_threshold=0.5), v) == [0, 2]


def test_select_combines_constraints_in_one_pass() -> None:
    hits = _hits(["a", "a", "b", "b", "c", "a"])
    vecs = np.eye(6, dtype=np.float32)
    vecs[3] = vecs[2]  # clip 3 duplicates clip 2
    lookup = lambda ids: vecs[list(ids)]  # noqa: E731
    chosen, dropped = select(hits, 4, Constraints(max_per_speaker=2, dedup_threshold=0.95), lookup)
    # 3 is a duplicate (it must not use up b's quota), 5 is a's third clip.
    assert [h.id for h in chosen] == [0, 1, 2, 4]
    assert dropped == {"near_duplicate": 1}
    assert [h.rank for h in chosen] == [1, 2, 3, 4] and [h.clip["search_rank"] for h in chosen] == [1, 2, 3, 5]
    diverse, _ = select(hits, 3, Constraints(diverse_speakers=True), lookup)
    assert [h.id for h in diverse] == [0, 2, 4]
    with pytest.raises(CurationError, match="speech vectors"):
        select(hits, 2, Constraints(dedup_threshold=0.9))


def test_quality_and_ranges_become_filter_conditions() -> None:
    c = Constraints(min_quality=3.5, ranges={"m_snr_db": (15, None), "m_f0_median_hz": (80, 160), "duration": (None, 4)})
    conds = constraint_filter(c)
    assert conds == [
        {"field": "m_dnsmos_ovrl", "op": ">=", "value": 3.5},
        {"field": "m_snr_db", "op": ">=", "value": 15.0},
        {"field": "m_f0_median_hz", "op": "between", "value": [80.0, 160.0]},
        {"field": "duration", "op": "<=", "value": 4.0},
    ]
    user = {"field": "gender", "op": "=", "value": "male"}
    assert combine_filters(user, conds[:1]) == [user, conds[0]]
    assert combine_filters(None, []) is None
    assert parse_range("m_snr_db=15:") == ("m_snr_db", (15.0, None))
    assert parse_range("m_f0_median_hz=80:160") == ("m_f0_median_hz", (80.0, 160.0))
    for bad in ("m_snr_db", "m_snr_db=15", "=1:2", "x=a:b"):
        with pytest.raises(CurationError):
            parse_range(bad)
    with pytest.raises(CurationError, match="above high"):
        Constraints(ranges={"x": (3, 1)}).validated()
    with pytest.raises(CurationError):
        Constraints(max_per_speaker=0).validated()
