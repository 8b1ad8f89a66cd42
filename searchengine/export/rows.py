"""Search results as manifest rows: the one record every export format is written from.

The rows use the indexer's manifest fields (id, path, start, end, speaker, language, global_caption,
fine_captions, transcript), so a JSONL or CSV export can be indexed again or fed to any tool that
reads such manifests; the search score and rank and the clip's other metadata come along as extra
columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from searchengine.search import Hit, Searcher

FIRST_COLUMNS = ("id", "path", "start", "end", "duration", "speaker", "language", "global_caption",
                 "fine_captions", "transcript", "normalized_transcript", "score", "rank", "clip_id")
_DROP = {"source_key", "source_path", "id", "segment"}


def manifest_row(hit: Hit) -> dict[str, Any]:
    """One manifest record for a hit."""
    clip = hit.clip
    row: dict[str, Any] = {
        "id": clip.get("source_key") if not clip.get("segment") else f"{clip.get('source_key')}#{clip.get('segment')}",
        "path": clip.get("source_path"),
        "start": clip.get("start"),
        "end": clip.get("end"),
        "duration": clip.get("duration"),
        "speaker": clip.get("speaker"),
        "language": clip.get("language"),
        "global_caption": hit.captions.get("global"),
        "fine_captions": list(hit.captions.get("fine") or []),
        "transcript": clip.get("transcript"),
        "normalized_transcript": clip.get("normalized_transcript"),
        "score": hit.score,
        "rank": hit.rank,
        "clip_id": hit.id,
    }
    for key, value in clip.items():
        if key not in _DROP and key not in row:
            row[key] = value
    return row


def selected_rows(searcher: Searcher, ids: Sequence[int], scores: Sequence[float] | None = None,
                  ranks: Sequence[int] | None = None, con: Any = None) -> list[dict[str, Any]]:
    """Manifest rows for clips a person picked (ticked results of any search, text or audio), in the
    order given, with the scores and ranks the page showed when it sends them (else rank = position).

    Exporting a selection must not depend on re-running the search that produced it: an uploaded
    recording cannot be replayed, and a re-run could rank differently. Unknown ids raise
    ClipNotFoundError, so nothing is silently left out."""
    ids = [int(i) for i in ids]
    if any(v is not None and len(v) != len(ids) for v in (scores, ranks)):
        raise ValueError("scores and ranks must have one value per id")
    searcher.require_clips(ids, con)
    records = searcher.clips(ids, con)
    rows = []
    for i, cid in enumerate(ids):
        record = records[cid]
        score = float(scores[i]) if scores is not None else None
        rank = int(ranks[i]) if ranks is not None else i + 1
        hit = Hit(id=cid, rank=rank, score=score, matched="selection", scores={}, caption=None,  # type: ignore[arg-type]
                  clip=record["clip"], captions=record["captions"])
        rows.append(manifest_row(hit))
    return rows
