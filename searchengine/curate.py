"""Curating an export: turning a ranked search into a usable training set.

A plain top-N of a voice search is rarely what a data set needs: the best matches tend to be many
clips of the same few speakers, near-identical takes, and some noisy recordings. The functions here
work on a ranked candidate list (search hits, best first) and keep the ranking as the tie-breaker
for every choice, so a curated export is still "the best matches that satisfy the constraints":

- minimum quality and attribute ranges become ordinary filter conditions (`searchengine.filters`),
  so DuckDB applies them before ranking and the column whitelist and type checks are the filters';
- at most K clips per speaker, speaker diversity (round-robin across speakers) and near-duplicate
  removal (speech-vector cosine above a threshold) need the ranked list itself, so they run here,
  greedily in rank order, over candidates fetched several times deeper than N.

`curate` ties them together with the searcher and widens the candidate list when the constraints
reject so many clips that N cannot be filled from the first fetch.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searchengine.search import MAX_TOP_K, Hit, Searcher, SearchOptions
from searchengine.understanding import DEFAULT_UNDERSTAND

QUALITY_COLUMN = "m_dnsmos_ovrl"
CLUSTER_COLUMN = "m_speaker_cluster"
DEFAULT_OVERFETCH = 8
"""Candidates fetched per clip wanted: constraints reject clips, and a deeper list lets N still fill."""

HISTOGRAM_COLUMNS = ("duration", "m_dnsmos_ovrl", "m_snr_db", "m_loudness_dbfs", "m_f0_median_hz",
                     "m_f0_spread_st", "m_rate_syl_per_s", "m_reverb_db")
"""Numeric attributes drawn in the summary PNG, in this order, when the collection has them."""


class CurationError(ValueError):
    """Constraints that cannot be applied as asked; the message says what to change."""


@dataclass(frozen=True)
class Constraints:
    """What a curated export must satisfy besides matching the query.

    `ranges` maps a numeric column to (low, high); either bound may be None for an open side.
    """

    min_quality: float | None = None
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    max_per_speaker: int | None = None
    diverse_speakers: bool = False
    dedup_threshold: float | None = None

    def validated(self) -> Constraints:
        if self.min_quality is not None and not math.isfinite(self.min_quality):
            raise CurationError("min quality must be a finite number (DNSMOS OVRL is 1-5)")
        if self.max_per_speaker is not None and self.max_per_speaker < 1:
            raise CurationError("max per speaker must be at least 1")
        if self.dedup_threshold is not None and not -1.0 <= self.dedup_threshold <= 1.0:
            raise CurationError("dedup threshold is a cosine, between -1 and 1")
        for name, (low, high) in self.ranges.items():
            if low is None and high is None:
                raise CurationError(f"range for {name} needs a low or a high bound")
            if low is not None and high is not None and low > high:
                raise CurationError(f"range for {name}: low {low} is above high {high}")
        return self

    @property
    def reorders(self) -> bool:
        """Whether the ranked list can lose or move clips (then candidates must be over-fetched)."""
        return bool(self.max_per_speaker or self.diverse_speakers or self.dedup_threshold is not None)


# ----------------------------------------------------------------------------- filter conditions
def constraint_filter(constraints: Constraints) -> list[dict[str, Any]]:
    """Minimum quality and ranges as filter-tree conditions, so DuckDB applies them before ranking
    and `searchengine.filters` checks the column names and types like any other filter."""
    out: list[dict[str, Any]] = []
    if constraints.min_quality is not None:
        out.append({"field": QUALITY_COLUMN, "op": ">=", "value": float(constraints.min_quality)})
    for name, (low, high) in constraints.ranges.items():
        if low is not None and high is not None:
            out.append({"field": name, "op": "between", "value": [float(low), float(high)]})
        elif low is not None:
            out.append({"field": name, "op": ">=", "value": float(low)})
        else:
            out.append({"field": name, "op": "<=", "value": float(high)})
    return out


def combine_filters(spec: Mapping[str, Any] | Sequence[Any] | None, extra: Sequence[Mapping[str, Any]]) -> Any:
    """The user's filter AND the constraint conditions (a top-level list means AND to the compiler)."""
    parts: list[Any] = []
    if isinstance(spec, (list, tuple)):
        parts.extend(spec)
    elif spec:
        parts.append(spec)
    parts.extend(extra)
    return parts or None


def parse_range(text: str) -> tuple[str, tuple[float | None, float | None]]:
    """`FIELD=LOW:HIGH` (either side may be empty) from the command line -> (field, (low, high))."""
    name, sep, bounds = text.partition("=")
    low_text, colon, high_text = bounds.partition(":")
    if not sep or not colon or not name.strip():
        raise CurationError(f"range {text!r}: write FIELD=LOW:HIGH, e.g. m_snr_db=15:  or  m_f0_median_hz=80:160")
    try:
        low = float(low_text) if low_text.strip() else None
        high = float(high_text) if high_text.strip() else None
    except ValueError:
        raise CurationError(f"range {text!r}: bounds must be numbers") from None
    return name.strip(), (low, high)


# ----------------------------------------------------------------------------- selection
def speaker_key(hit: Hit) -> Hashable:
    """Who is speaking: the manifest's speaker label when there is one (it is ground truth), else the
    speaker cluster the indexer estimated from speaker vectors. A clip with neither gets a key of its
    own: an unknown speaker cannot be counted, so it is never held back by a per-speaker limit."""
    speaker = hit.clip.get("speaker")
    if speaker is not None and str(speaker).strip():
        return ("speaker", str(speaker))
    cluster = hit.clip.get(CLUSTER_COLUMN)
    if cluster is not None:
        return ("cluster", int(cluster))
    return ("clip", hit.id)


def round_robin(hits: Sequence[Hit], key: Callable[[Hit], Hashable] = speaker_key) -> list[Hit]:
    """Reorder so each speaker's best clip comes before anyone's second: round r takes the r-th best
    clip of every speaker, speakers ordered by their best clip's rank. Within a speaker, rank order
    is kept, so diversity never trades a speaker's better clip for a worse one."""
    groups: dict[Hashable, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(key(hit), []).append(hit)
    out: list[Hit] = []
    depth = max((len(g) for g in groups.values()), default=0)
    for r in range(depth):
        out.extend(g[r] for g in groups.values() if r < len(g))
    return out


def select(
    hits: Sequence[Hit],
    n: int,
    constraints: Constraints,
    vectors: Callable[[Sequence[int]], np.ndarray] | None = None,
    key: Callable[[Hit], Hashable] = speaker_key,
) -> tuple[list[Hit], Counter[str]]:
    """Pick up to `n` hits satisfying the per-speaker and duplicate constraints, in one greedy pass.

    One pass rather than separate per-speaker and duplicate filters, so a clip rejected as a
    duplicate does not use up its speaker's quota, and the pass stops as soon as `n` are chosen (vectors are read a
    block at a time, only as far down the list as the pass gets). Returns the picks (ranks
    renumbered 1..) and how many clips each constraint turned away.
    """
    ordered = round_robin(hits, key) if constraints.diverse_speakers else list(hits)
    dropped: Counter[str] = Counter()
    counts: Counter[Hashable] = Counter()
    chosen: list[Hit] = []
    chosen_vecs: np.ndarray | None = None  # row i = vector of chosen[i]; preallocated, never re-stacked
    threshold = constraints.dedup_threshold
    if threshold is not None and vectors is None:
        raise CurationError("dropping near-duplicates needs the clips' speech vectors")
    batch = 256
    for start in range(0, len(ordered), batch):
        block = ordered[start:start + batch]
        vecs = vectors([h.id for h in block]) if threshold is not None else None
        if vecs is not None:
            if chosen_vecs is None:
                chosen_vecs = np.empty((n, vecs.shape[1]), np.float32)
            # One matrix product against everything chosen before this block (the expensive part);
            # clips chosen inside the block are checked one by one below (at most `batch` of them).
            before = len(chosen)
            prior_max = (vecs @ chosen_vecs[:before].T).max(axis=1) if before else np.full(len(block), -np.inf)
        for i, hit in enumerate(block):
            if len(chosen) >= n:
                break
            s = key(hit)
            if constraints.max_per_speaker and counts[s] >= constraints.max_per_speaker:
                dropped["max_per_speaker"] += 1
                continue
            if vecs is not None:
                v = vecs[i]
                inside = chosen_vecs[before:len(chosen)]
                if prior_max[i] > threshold or (len(inside) and float((inside @ v).max()) > threshold):
                    dropped["near_duplicate"] += 1
                    continue
                chosen_vecs[len(chosen)] = v
            counts[s] += 1
            chosen.append(hit)
        if len(chosen) >= n:
            break
    return [_reranked(h, i + 1) for i, h in enumerate(chosen)], dropped


def _reranked(hit: Hit, rank: int) -> Hit:
    """A copy ranked within the curated list; the search rank is kept as `clip["search_rank"]`, so a
    reader of the export can see how far down the ranking a pick came from."""
    clip = dict(hit.clip)
    clip["search_rank"] = hit.rank
    return Hit(id=hit.id, rank=rank, score=hit.score, matched=hit.matched, scores=hit.scores,
               caption=hit.caption, clip=clip, captions=hit.captions)


# ----------------------------------------------------------------------------- the whole step
@dataclass
class Curation:
    """A curated pick and what it took to get there."""

    hits: list[Hit]
    requested: int
    candidates: int  # ranked candidates looked at (the last fetch's depth)
    matching: int  # clips passing the filters (quality, ranges, user filter) in the collection
    dropped: dict[str, int]
    constraints: Constraints


def curate(
    searcher: Searcher,
    query: str,
    n: int,
    constraints: Constraints = Constraints(),
    filter: Mapping[str, Any] | Sequence[Any] | None = None,  # noqa: A002 - the name every caller uses
    indexes: Sequence[str] | None = None,
    fusion: str | None = None,
    con: Any = None,
    overfetch: int = DEFAULT_OVERFETCH,
    understand: bool = DEFAULT_UNDERSTAND,
) -> Curation:
    """The best `n` clips for `query` that satisfy `constraints`, ranked as a text search ranks them
    (with `understand`, the description's measurable words fused in, as `Searcher.search_text` does).

    Candidates are fetched `overfetch` times deeper than `n`; if the constraints then leave fewer
    than `n` while the ranking had more to give, the depth grows fourfold and selection reruns, until
    `n` are found or every matching clip has been seen. Without constraints this is exactly the
    search's top `n`.
    """
    constraints = constraints.validated()
    if n < 1:
        raise CurationError("n must be at least 1")
    con = con or searcher.cursor()
    if constraints.min_quality is not None and QUALITY_COLUMN not in searcher.columns:
        raise CurationError(f"minimum quality needs the {QUALITY_COLUMN} column; this collection was indexed "
                            "without attributes (re-run `clsp-search index` with them)")
    spec = combine_filters(filter, constraint_filter(constraints))
    extra: dict[str, Any] = {}
    if indexes:
        extra["indexes"] = tuple(indexes)
    if fusion:
        extra["fusion"] = fusion
    depth = min(MAX_TOP_K, n * max(1, overfetch) if constraints.reorders else n)
    query_vec = searcher.embed_text(query)
    rerank = searcher.understand(query, con=con).reranker if understand else None
    while True:
        page = searcher.search_vector(query_vec, SearchOptions(top_k=depth, filter=spec, **extra), con=con, modality="text",
                                      rerank=rerank)
        chosen, dropped = select(page.hits, n, constraints, lambda ids: searcher.collection.vectors("speech", ids))
        exhausted = len(page.hits) < depth or depth >= min(MAX_TOP_K, page.candidates)
        if len(chosen) >= n or exhausted or depth >= MAX_TOP_K:
            return Curation(chosen, n, len(page.hits), page.candidates, dict(dropped), constraints)
        depth = min(MAX_TOP_K, depth * 4)


# ----------------------------------------------------------------------------- summary
def summarize(curation: Curation) -> dict[str, Any]:
    """Counts a curator checks before using a set: how many per speaker, gender and accent, what was
    dropped and why, and the range of each numeric attribute. Plain JSON-able values."""
    hits = curation.hits
    speakers = Counter(_speaker_label(h) for h in hits)
    genders = Counter(str(_first(h.clip, "gender", "m_gender") or "unknown") for h in hits)
    accents = Counter(str(h.clip.get("accent") or "unknown") for h in hits)
    attributes: dict[str, dict[str, float]] = {}
    for name, values in _numeric_columns(hits).items():
        arr = np.asarray(values, dtype=float)
        attributes[name] = {"min": round(float(arr.min()), 3), "median": round(float(np.median(arr)), 3),
                            "max": round(float(arr.max()), 3)}
    return {
        "selected": len(hits),
        "requested": curation.requested,
        "candidates": curation.candidates,
        "matching": curation.matching,
        "dropped": dict(curation.dropped),
        "speakers": len(speakers),
        "per_speaker": dict(speakers.most_common()),
        "genders": dict(genders.most_common()),
        "accents": dict(accents.most_common()),
        "attributes": attributes,
    }


def _first(clip: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if clip.get(name) not in (None, ""):
            return clip[name]
    return None


def _speaker_label(hit: Hit) -> str:
    kind, value = speaker_key(hit)
    return {"speaker": str(value), "cluster": f"cluster {value}", "clip": "unknown"}[kind]


def _numeric_columns(hits: Sequence[Hit]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name in HISTOGRAM_COLUMNS:
        values = [h.clip.get(name) for h in hits]
        values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        if values:
            out[name] = values
    return out


def write_summary_png(curation: Curation, path: str | Path) -> Path:
    """Histograms of the picks' numeric attributes (and clips per speaker) as one PNG.

    matplotlib is optional (a server that only searches does not need it); without it this raises a
    CurationError saying what to install rather than failing on import.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise CurationError("the summary PNG needs matplotlib: pip install matplotlib") from None
    columns = _numeric_columns(curation.hits)
    speakers = Counter(_speaker_label(h) for h in curation.hits)
    panels = len(columns) + 1
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, (name, values) in zip(flat, columns.items(), strict=False):
        ax.hist(values, bins=min(20, max(5, len(values) // 3)), color="#4c72b0")
        ax.set_title(name, fontsize=10)
    ax = flat[len(columns)]
    counts = sorted(speakers.values(), reverse=True)
    ax.bar(range(len(counts)), counts, color="#dd8452")
    ax.set_title(f"clips per speaker ({len(counts)} speakers)", fontsize=10)
    ax.set_xticks([])
    for ax in flat[panels:]:
        ax.axis("off")
    fig.suptitle(f"{len(curation.hits)} clips chosen of {curation.requested} requested", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)
    return path
