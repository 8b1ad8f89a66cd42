"""POST /export: the results of a search as manifest lines (JSONL or CSV), for curating data sets."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api import deps
from api.contract import checked, contract_for
from api.errors import ApiError, responses
from api.schemas import ExportQuery, ExportSelection, PickedClip
from api.settings import Settings
from searchengine.curate import Constraints, CurationError, curate, summarize
from searchengine.export import csv_lines, jsonl_lines, manifest_row, selected_rows
from searchengine.search import DEFAULT_FUSION, DEFAULT_INDEXES, Searcher

router = APIRouter(tags=["export"])


@router.post(
    "/export",
    summary="Export the best N clips of a text search (under curation constraints), or picked clip ids, "
            "as JSONL or CSV manifest lines",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                 "text/csv": {"schema": {"type": "string"}}},
                     "headers": {"X-Result-Count": {"schema": {"type": "integer"}, "description": "Rows written."}}},
               **responses(404)},
)
async def export(body: ExportQuery | ExportSelection, searcher: Searcher = Depends(deps.searcher),
                 settings: Settings = Depends(deps.settings), con: Any = Depends(deps.cursor)) -> StreamingResponse:
    if isinstance(body, ExportSelection):
        ids = [p.id if isinstance(p, PickedClip) else p for p in body.ids]
        rows = await run_in_threadpool(selected_rows, searcher, ids, None, None, con)
        for row, picked in zip(rows, body.ids, strict=True):
            if isinstance(picked, PickedClip):  # as the result list showed it
                row["score"], row["rank"] = picked.score, picked.rank
        return _stream(rows, body.format, {"X-Result-Count": str(len(rows))})
    if body.n > settings.limits.max_export:
        raise ApiError(422, f"n must be at most {settings.limits.max_export}", "validation_error")
    body = checked(body, searcher.columns)
    ranges = contract_for(searcher.columns).ranges_of(body.ranges)
    if any(low is not None and high is not None and low > high for low, high in ranges.values()):
        return _stream([], body.format, {"X-Result-Count": "0"})  # a range with min > max holds no clip
    constraints = Constraints(min_quality=body.min_quality, ranges=ranges, max_per_speaker=body.max_per_speaker,
                              diverse_speakers=body.diverse_speakers, dedup_threshold=body.dedup_threshold)
    try:
        result = await run_in_threadpool(curate, searcher, body.query, body.n, constraints, body.filter,
                                         body.indexes or DEFAULT_INDEXES, body.fusion or DEFAULT_FUSION, con)
    except CurationError as exc:
        raise ApiError(422, str(exc), "bad_constraints") from exc
    info = summarize(result)
    rows = [manifest_row(h) for h in result.hits]
    return _stream(rows, body.format, {
        "X-Result-Count": str(len(rows)),
        "X-Curation-Summary": json.dumps(_header_summary(info), separators=(",", ":"), ensure_ascii=True)})


def _stream(rows: list[dict[str, Any]], fmt: str, headers: dict[str, str]) -> StreamingResponse:
    if fmt == "csv":
        media, lines, ext = "text/csv", csv_lines(rows), "csv"
    else:
        media, lines, ext = "application/x-ndjson", jsonl_lines(rows), "jsonl"
    return StreamingResponse(lines, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="export.{ext}"', **headers})


def _header_summary(info: dict[str, Any]) -> dict[str, Any]:
    """The summary without per-speaker counts: those grow with the export, and HTTP clients cap a
    response's headers (h11 at 16 KiB), while genders, accents and attribute ranges stay small."""
    return {k: v for k, v in info.items() if k != "per_speaker"}
