"""POST /classify (zero-shot labels for a voice) and POST /similarity (how alike two voices sound).

Both take clips of the collection by id as JSON, or uploads as multipart; clips use their stored
vectors, uploads are embedded with the collection's model."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from api import deps
from api.errors import ApiError
from api.media import read_upload
from api.schemas import ClassifyRequest, ClassifyResponse, SimilarityRequest, SimilarityResponse
from api.settings import Settings
from searchengine.search import Searcher, check_template

router = APIRouter(tags=["voices"])


def _kind(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "the body is not valid JSON", "bad_json") from None


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Zero-shot classification of clips or an upload against free-text labels",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ClassifyRequest"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file", "labels"], "properties": {
            "file": {"type": "string", "format": "binary"},
            "labels": {"type": "string", "description": "JSON list of labels"},
            "template": {"type": "string"}}}}}}},
)
async def classify(request: Request, searcher: Searcher = Depends(deps.searcher),
                   settings: Settings = Depends(deps.settings), con: Any = Depends(deps.cursor)) -> dict:
    kind = _kind(request)
    if kind == "application/json":
        body = deps.validate(ClassifyRequest, await _json(request))
        check_template(body.template)
        vectors = await run_in_threadpool(searcher.clip_vectors, body.clip_ids, con)
        ids: list[int | None] = list(body.clip_ids)
    elif kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "multipart classify needs an audio file in the field 'file'", "validation_error")
        fields = {"clip_ids": [0], "labels": deps.form_json(form.get("labels"), "labels")}
        if form.get("template"):
            fields["template"] = form.get("template")
        body = deps.validate(ClassifyRequest, fields)
        check_template(body.template)
        audio = await read_upload(upload, settings.limits)
        vectors = (await run_in_threadpool(searcher.embed_waveform, audio.waveform))[None, :]
        ids = [None]
    else:
        raise ApiError(415, "send application/json with clip_ids, or multipart/form-data with a file")
    probs = await run_in_threadpool(searcher.classify, vectors, body.labels, body.template)
    results = [
        {"clip_id": cid, "probabilities": {lab: round(float(p), 6) for lab, p in zip(body.labels, row, strict=False)},
         "label": body.labels[int(np.argmax(row))]}
        for cid, row in zip(ids, probs, strict=False)
    ]
    return {"results": results, "template": body.template}


@router.post(
    "/similarity",
    response_model=SimilarityResponse,
    summary="Speaking-style similarity of two voices (clip ids, uploads, or one of each)",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/SimilarityRequest"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "a": {"type": "string", "format": "binary", "description": "an upload, or a clip id as text"},
            "b": {"type": "string", "format": "binary", "description": "an upload, or a clip id as text"}}}}}}},
)
async def similarity(request: Request, searcher: Searcher = Depends(deps.searcher),
                     settings: Settings = Depends(deps.settings), con: Any = Depends(deps.cursor)) -> dict:
    kind = _kind(request)
    if kind == "application/json":
        body = deps.validate(SimilarityRequest, await _json(request))
        vecs = await run_in_threadpool(searcher.clip_vectors, [body.a, body.b], con)
        a, b = vecs[0], vecs[1]
    elif kind == "multipart/form-data":
        form = await request.form(max_files=2, max_fields=4)
        a = await _side(form.get("a"), "a", searcher, settings, con)
        b = await _side(form.get("b"), "b", searcher, settings, con)
    else:
        raise ApiError(415, "send application/json {a, b} with clip ids, or multipart/form-data with files a and b")
    cosine = float(np.dot(a, b))
    return {"similarity": round(searcher.similarity(a, b), 6), "cosine": round(cosine, 6)}


async def _side(value: Any, name: str, searcher: Searcher, settings: Settings, con: Any) -> np.ndarray:
    if value is None or value == "":
        raise ApiError(422, f"field '{name}' is missing: give an audio file or a clip id", "validation_error")
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ApiError(422, f"field '{name}' must be an audio file or a clip id (a number)", "validation_error")
        return (await run_in_threadpool(searcher.clip_vectors, [int(value)], con))[0]
    audio = await read_upload(value, settings.limits)
    return await run_in_threadpool(searcher.embed_waveform, audio.waveform)
