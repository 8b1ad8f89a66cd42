"""POST /export: the results of a search as manifest lines (JSONL or CSV), for curating data sets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api import deps
from api.errors import ApiError
from api.schemas import ExportRequest, filter_tree
from api.settings import Settings
from searchengine.export import csv_lines, jsonl_lines, manifest_row
from searchengine.search import DEFAULT_FUSION, DEFAULT_INDEXES, Searcher, SearchOptions

router = APIRouter(tags=["export"])


@router.post(
    "/export",
    summary="Export the top N clips of a text search as JSONL or CSV manifest lines",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export(body: ExportRequest, searcher: Searcher = Depends(deps.searcher),
                 settings: Settings = Depends(deps.settings), con: Any = Depends(deps.cursor)) -> StreamingResponse:
    if body.n > settings.limits.max_export:
        raise ApiError(422, f"n must be at most {settings.limits.max_export}", "validation_error")
    options = SearchOptions(top_k=body.n, filter=filter_tree(body.filter), indexes=tuple(body.indexes or DEFAULT_INDEXES),
                            fusion=body.fusion or DEFAULT_FUSION)
    page = await run_in_threadpool(searcher.search_text, body.query, options, con)
    rows = [manifest_row(h) for h in page.hits]
    if body.format == "csv":
        media, lines, ext = "text/csv", csv_lines(rows), "csv"
    else:
        media, lines, ext = "application/x-ndjson", jsonl_lines(rows), "jsonl"
    return StreamingResponse(lines, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="export.{ext}"', "X-Result-Count": str(len(rows))})
