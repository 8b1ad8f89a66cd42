"""POST /export: the results of a search, or picked clips, written for a trainer: manifest lines
(JSONL, CSV), NeMo manifest lines and lhotse cuts are streamed as they are made; a Hugging Face parquet
file and an LJSpeech zip carry the clips' audio, so they are built in a temporary folder by
`searchengine.export` (the same code as `clsp-search export`) and then sent, the folder removed
before the first byte goes out."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api import deps
from api.contract import checked, contract_for
from api.errors import ApiError, responses
from api.media import is_under
from api.schemas import ExportQuery, ExportSelection, PickedClip
from api.settings import Settings
from searchengine.curate import Constraints, CurationError, curate, summarize
from searchengine.export import (
    FILE_NAMES,
    MEDIA_TYPES,
    ExportError,
    manifest_row,
    selected_rows,
    text_lines,
    write_export,
    zip_folder,
)
from searchengine.search import DEFAULT_FUSION, DEFAULT_INDEXES, Searcher

router = APIRouter(tags=["export"])

AUDIO_MEDIA_TYPES = {"hf": "application/vnd.apache.parquet", "ljspeech": "application/zip"}
"""The formats that carry audio, as one file each: hf as parquet (what the Hub serves), ljspeech zipped."""
CHUNK = 1 << 20
_TEXT = {"schema": {"type": "string"}}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
CONTENT = {"application/x-ndjson": _TEXT, "text/csv": _TEXT, "application/vnd.apache.parquet": _BINARY,
           "application/zip": _BINARY}
HEADERS = {
    "X-Result-Count": {"schema": {"type": "integer", "minimum": 0}, "description": "Clips written."},
    "X-Untranscribed-Count": {"schema": {"type": "integer", "minimum": 0},
                              "description": "Clips written without a transcript (their text is empty)."},
    "X-Curation-Summary": {"schema": {"type": "string"},
                           "description": "Of a query export: the chosen clips' speakers, genders and attribute "
                                          "ranges, as compact JSON."},
    "Content-Disposition": {"schema": {"type": "string"},
                            "description": "attachment, with the format's usual file name (export.jsonl, "
                                           "manifest.json, cuts.jsonl, export.parquet, export.zip)."},
}


@router.post(
    "/export",
    summary="Export the best N clips of a text search (under curation constraints), or picked clip ids, for a "
            "trainer: manifest lines (JSONL, CSV), NeMo or lhotse manifests, a Hugging Face parquet, an LJSpeech zip",
    response_class=StreamingResponse,
    responses={200: {"description": "The export: text lines for jsonl, csv, nemo (application/x-ndjson) and lhotse; "
                                    "a parquet file for hf; a zip for ljspeech",
                     "content": CONTENT, "headers": HEADERS},
               **responses(403, 404)},
)
async def export(request: Request, body: ExportQuery | ExportSelection, searcher: Searcher = Depends(deps.searcher),
                 settings: Settings = Depends(deps.settings), con: Any = Depends(deps.cursor)) -> StreamingResponse:
    if body.format in AUDIO_MEDIA_TYPES:
        return await _audio_export(request, body, searcher, settings, con)
    rows, headers = await _rows(body, searcher, settings, con)
    return _stream(rows, body.format, headers)


async def _rows(body: ExportQuery | ExportSelection, searcher: Searcher, settings: Settings,
                con: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The manifest rows to export and the headers that describe them."""
    if isinstance(body, ExportSelection):
        ids = [p.id if isinstance(p, PickedClip) else p for p in body.ids]
        rows = await run_in_threadpool(selected_rows, searcher, ids, None, None, con)
        for row, picked in zip(rows, body.ids, strict=True):
            if isinstance(picked, PickedClip):  # as the result list showed it
                row["score"], row["rank"] = picked.score, picked.rank
        return rows, {"X-Result-Count": str(len(rows))}
    if body.n > settings.limits.max_export:
        raise ApiError(422, f"n must be at most {settings.limits.max_export}", "validation_error")
    body = checked(body, searcher.columns)
    ranges = contract_for(searcher.columns).ranges_of(body.ranges)
    if any(low is not None and high is not None and low > high for low, high in ranges.values()):
        return [], {"X-Result-Count": "0"}  # a range with min > max holds no clip
    constraints = Constraints(min_quality=body.min_quality, ranges=ranges, max_per_speaker=body.max_per_speaker,
                              diverse_speakers=body.diverse_speakers, dedup_threshold=body.dedup_threshold)
    try:
        result = await run_in_threadpool(curate, searcher, body.query, body.n, constraints, body.filter,
                                         body.indexes or DEFAULT_INDEXES, body.fusion or DEFAULT_FUSION, con)
    except CurationError as exc:
        raise ApiError(422, str(exc), "bad_constraints") from exc
    info = summarize(result)
    rows = [manifest_row(h) for h in result.hits]
    return rows, {
        "X-Result-Count": str(len(rows)),
        "X-Curation-Summary": json.dumps(_header_summary(info), separators=(",", ":"), ensure_ascii=True)}


def _untranscribed(rows: list[dict[str, Any]]) -> str:
    return str(sum(1 for r in rows if not r.get("transcript")))


def _stream(rows: list[dict[str, Any]], fmt: str, headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(text_lines(rows, fmt), media_type=MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{FILE_NAMES[fmt]}"',
        "X-Untranscribed-Count": _untranscribed(rows), **headers})


async def _audio_export(request: Request, body: ExportQuery | ExportSelection, searcher: Searcher,
                        settings: Settings, con: Any) -> StreamingResponse:
    """hf or ljspeech: the clips' audio is read, so only files the server would serve are (403 otherwise)."""
    rows, headers = await _rows(body, searcher, settings, con)
    roots = request.app.state.audio_roots
    outside = [r["clip_id"] for r in rows if not is_under(r["path"], roots)]
    if outside:
        raise ApiError(403, f"clip {outside[0]}'s file lies outside the collection's audio roots; its audio is not "
                            "exported", detail={"ids": outside[:100]})
    try:
        file = await run_in_threadpool(_build, rows, body.format, body.sample_rate)
    except ExportError as exc:
        raise ApiError(404, str(exc), "audio_missing") from None
    size = os.fstat(file.fileno()).st_size
    return StreamingResponse(_chunks(file), media_type=AUDIO_MEDIA_TYPES[body.format], headers={
        "Content-Disposition": f'attachment; filename="{FILE_NAMES[body.format]}"', "Content-Length": str(size),
        "X-Untranscribed-Count": _untranscribed(rows), **headers})


def _build(rows: list[dict[str, Any]], fmt: str, sample_rate: int | None) -> BinaryIO:
    """The export as one open file whose folder is already gone (the open handle keeps its bytes), so
    nothing is left on disk whether the client reads it all, disconnects or the server stops."""
    folder = Path(tempfile.mkdtemp(prefix="clsp-export-"))
    try:
        if fmt == "hf":
            target = folder / FILE_NAMES["hf"]
            write_export(rows, "hf", target, sample_rate)
        else:
            write_export(rows, "ljspeech", folder / "ljspeech", sample_rate)
            target = folder / FILE_NAMES["ljspeech"]
            zip_folder(folder / "ljspeech", target)
        return open(target, "rb")  # noqa: SIM115 - closed by _chunks
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := file.read(CHUNK):
            yield chunk
    finally:
        file.close()


def _header_summary(info: dict[str, Any]) -> dict[str, Any]:
    """The summary without per-speaker counts: those grow with the export, and HTTP clients cap a
    response's headers (h11 at 16 KiB), while genders, accents and attribute ranges stay small."""
    return {k: v for k, v in info.items() if k != "per_speaker"}
