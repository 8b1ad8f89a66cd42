"""POST /search/text and POST /search/audio: describe a voice, or give an example of one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from api import bodies, deps
from api.contract import checked
from api.errors import ApiError, responses
from api.media import read_upload
from api.schemas import AudioSearchForm, ClipSearchRequest, SearchParams, SearchResponse, TextSearchRequest
from api.settings import Settings
from searchengine.search import (
    DEFAULT_FUSION,
    DEFAULT_INDEXES,
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
    body = checked(body, searcher.columns)
    options = replace(_options(body, settings, indexes=body.indexes, fusion=body.fusion),
                      understand=body.understand, drop=tuple(body.drop))
    page = await run_in_threadpool(searcher.search_text, body.query, options, con)
    return page_out(page, searcher)


@router.post(
    "/audio",
    response_model=SearchResponse,
    summary="Find clips that sound like an upload or like clips of the collection",
    responses=responses(404),
    openapi_extra=bodies.json_or_multipart(ClipSearchRequest, AudioSearchForm, {
        "clips": {"clip_ids": [0, 1]},
        "clips, filtered": {"clip_ids": [0], "top_k": 20, "filter": {"field": "duration", "op": ">", "value": 2}},
        "clips, by voice alone": {"clip_ids": [0], "voice_weight": 1.0}}),
)
async def search_audio(
    request: Request,
    searcher: Searcher = Depends(deps.searcher),
    settings: Settings = Depends(deps.settings),
    con: Any = Depends(deps.cursor),
) -> dict:
    """JSON `{clip_ids: [...]}` searches by clips of the collection (their mean vector, themselves
    excluded); a multipart upload (`file`) searches by a recording. `voice_weight` sets how much the
    voice (speaker index) counts beside the style (speech index)."""
    if bodies.media_type(request) == "application/json":
        body = checked(await bodies.json_body(request, ClipSearchRequest), searcher.columns)
        options = replace(_options(body, settings, indexes=["speech"]), voice_weight=body.voice_weight)
        page = await run_in_threadpool(searcher.search_clips, body.clip_ids, options, con)
        return page_out(page, searcher)
    form = await request.form(max_files=1, max_fields=10)
    params = checked(bodies.form_fields(form, AudioSearchForm), searcher.columns)
    options = replace(_options(params, settings, indexes=["speech"]), voice_weight=params.voice_weight)
    audio = await read_upload(bodies.upload(params.file, "file"), settings.limits)
    page = await run_in_threadpool(searcher.search_audio, audio.waveform, options, audio.content_hash, con)
    return page_out(page, searcher)


def _options(params: SearchParams, settings: Settings, indexes: Any = None, fusion: Any = None) -> SearchOptions:
    if params.top_k > settings.limits.max_top_k:
        raise ApiError(422, f"top_k must be at most {settings.limits.max_top_k}", "validation_error")
    return SearchOptions(
        top_k=params.top_k,
        offset=params.offset,
        filter=params.filter,  # validated by api.contract.checked
        indexes=tuple(indexes or DEFAULT_INDEXES),
        fusion=fusion or DEFAULT_FUSION,
    )


def page_out(page: SearchPage, searcher: Searcher) -> dict:
    out = page.to_dict()
    for hit in out["hits"]:
        hit["audio_url"] = f"/clips/{hit['id']}/audio"
    out["model_id"] = searcher.collection.model_id
    return out
