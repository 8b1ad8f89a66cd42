"""POST /search/text and POST /search/audio: describe a voice, or give an example of one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from api import deps
from api.errors import ApiError
from api.media import read_upload
from api.schemas import ClipSearchRequest, SearchParams, SearchResponse, TextSearchRequest, filter_tree
from api.settings import Settings
from searchengine.search import (
    DEFAULT_FUSION,
    DEFAULT_INDEXES,
    MAX_PAGE_TOP_K,
    Searcher,
    SearchOptions,
    SearchPage,
)

router = APIRouter(prefix="/search", tags=["search"])


@router.post("/text", response_model=SearchResponse, summary="Find clips matching a description")
async def search_text(
    body: TextSearchRequest,
    searcher: Searcher = Depends(deps.searcher),
    settings: Settings = Depends(deps.settings),
    con: Any = Depends(deps.cursor),
) -> dict:
    options = replace(_options(body, settings, indexes=body.indexes, fusion=body.fusion),
                      understand=body.understand, drop=tuple(body.drop))
    page = await run_in_threadpool(searcher.search_text, body.query, options, con)
    return page_out(page, searcher)


@router.post(
    "/audio",
    response_model=SearchResponse,
    summary="Find clips that sound like an upload or like clips of the collection",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ClipSearchRequest"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_TOP_K},
                            "offset": {"type": "integer", "minimum": 0},
                            "filter": {"type": "string", "description": "JSON filter, as in /search/text"},
                        },
                    }
                },
            },
        }
    },
)
async def search_audio(
    request: Request,
    searcher: Searcher = Depends(deps.searcher),
    settings: Settings = Depends(deps.settings),
    con: Any = Depends(deps.cursor),
) -> dict:
    """JSON `{clip_ids: [...]}` searches by clips of the collection (their mean vector, themselves
    excluded); a multipart upload (`file`) searches by a recording."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise ApiError(400, "the body is not valid JSON", "bad_json") from None
        body = deps.validate(ClipSearchRequest, data)
        options = _options(body, settings, indexes=["speech"])
        page = await run_in_threadpool(searcher.search_clips, body.clip_ids, options, con)
        return page_out(page, searcher)
    if kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "multipart search needs an audio file in the field 'file'", "validation_error")
        params = deps.validate(SearchParams, {
            k: (deps.form_json(form.get(k), k) if k == "filter" else form.get(k))
            for k in ("top_k", "offset", "filter") if form.get(k) not in (None, "")
        })
        options = _options(params, settings, indexes=["speech"])
        audio = await read_upload(upload, settings.limits)
        page = await run_in_threadpool(searcher.search_audio, audio.waveform, options, audio.content_hash, con)
        return page_out(page, searcher)
    raise ApiError(415, f"send application/json with clip_ids, or multipart/form-data with a file (got {kind or 'nothing'})")


def _options(params: SearchParams, settings: Settings, indexes: Any = None, fusion: Any = None) -> SearchOptions:
    if params.top_k > settings.limits.max_top_k:
        raise ApiError(422, f"top_k must be at most {settings.limits.max_top_k}", "validation_error")
    return SearchOptions(
        top_k=params.top_k,
        offset=params.offset,
        filter=filter_tree(params.filter),
        indexes=tuple(indexes or DEFAULT_INDEXES),
        fusion=fusion or DEFAULT_FUSION,
    )


def page_out(page: SearchPage, searcher: Searcher) -> dict:
    out = page.to_dict()
    for hit in out["hits"]:
        hit["audio_url"] = f"/clips/{hit['id']}/audio"
    out["model_id"] = searcher.collection.model_id
    return out
