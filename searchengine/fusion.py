"""Score fusion: how the rankings of several indexes (speech, global captions, fine captions) become one.

Kept apart from `searchengine.search` because it is pure arithmetic over ranked lists: no model, no
FAISS, no DuckDB. A ranked list here is `{clip id: (cosine, evidence)}` per index, where evidence is
the caption id that matched (or None for the speech index); fusion looks at the cosines only.

    fused = weighted_sum({"speech": {7: (0.61, None)}, "global": {7: (0.40, 12)}}, DEFAULT_WEIGHTS)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

RankedLists = Mapping[str, Mapping[int, tuple[float, Any]]]
"""index name -> {clip id: (cosine, evidence)}."""

DEFAULT_FUSION = "weighted"
"""A weighted sum of cosines beat reciprocal rank fusion by about 0.05 nDCG@10 on held-out captions with
clsp-mini, on two corpus seeds (benchmarks/RESULTS.md, Search): RRF gives every caption match a rank
bonus of the same size as a speech match, so clips that merely have a similar caption push the clip
whose *audio* matches out of the top ranks; summed cosines keep the speech evidence in proportion."""

RRF_K = 60
"""The constant of reciprocal rank fusion (Cormack et al. 2009): dampens the weight of the very top ranks."""

DEFAULT_WEIGHTS: dict[str, float] = {"speech": 1.0, "global": 0.25, "fine": 0.25}
"""Per-index weights for both fusions: the speech index is the evidence about the audio itself, captions
are second-hand (what someone wrote about it). Measured with clsp-mini, caption weight 0.25 ranks as
well as the speech index alone (nDCG@10 0.766 vs 0.768) and better than 0.5 (0.758) or 1.0 (0.748),
while still letting caption matches explain and break ties between hits (RESULTS.md, Search)."""

FUSION_DEPTH = 200
"""Each index contributes at least this many candidates to a fused ranking; a fixed depth keeps fused
pages consistent with each other (a clip's fused score does not depend on which page is asked for)."""


def rrf(lists: RankedLists, weights: Mapping[str, float], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: sum over indexes of weight / (k + rank). Uses ranks only, so the
    different score scales of text->speech and text->text cosines do not matter."""
    fused: dict[int, float] = {}
    for kind, found in lists.items():
        w = float(weights.get(kind, 1.0))
        order = sorted(found, key=lambda cid: (-found[cid][0], cid))
        for rank, cid in enumerate(order, start=1):
            fused[cid] = fused.get(cid, 0.0) + w / (k + rank)
    return fused


def weighted_sum(lists: RankedLists, weights: Mapping[str, float]) -> dict[int, float]:
    """Weighted mean of the cosines a clip has in each index (over the indexes where it has one: a clip
    without captions is judged by its audio alone rather than counted as a zero).

    Callers complete the lists first (every candidate scored in every index, see
    `Searcher.search_vector`): otherwise a clip one index missed is judged on fewer indexes."""
    total: dict[int, float] = {}
    mass: dict[int, float] = {}
    for kind, found in lists.items():
        w = float(weights.get(kind, 1.0))
        for cid, (score, _) in found.items():
            total[cid] = total.get(cid, 0.0) + w * score
            mass[cid] = mass.get(cid, 0.0) + w
    return {cid: total[cid] / mass[cid] for cid in total}


FUSIONS: dict[str, Callable[[RankedLists, Mapping[str, float]], dict[int, float]]] = {
    "rrf": rrf,
    "weighted": weighted_sum,
}
"""Fusion modes by the name a query gives (`SearchOptions.fusion`, the API's `fusion`)."""


def contributions(lists: RankedLists) -> dict[str, dict[int, float]]:
    """How strongly each index vouches for each clip it found: the reciprocal of its rank there (1 +
    the number of strictly better scores, so ties share a rank). A hit's `matched` index is the one
    with the largest weighted contribution, whichever fusion ranked it."""
    out: dict[str, dict[int, float]] = {}
    for kind, found in lists.items():
        ids = list(found)
        scores = np.array([found[cid][0] for cid in ids], dtype=np.float64)
        descending = -np.sort(-scores)
        ranks = 1 + np.searchsorted(-descending, -scores, side="left")
        out[kind] = {cid: 1.0 / (RRF_K + int(r)) for cid, r in zip(ids, ranks, strict=True)}
    return out


__all__ = [
    "DEFAULT_FUSION",
    "DEFAULT_WEIGHTS",
    "FUSIONS",
    "FUSION_DEPTH",
    "RRF_K",
    "RankedLists",
    "contributions",
    "rrf",
    "weighted_sum",
]
