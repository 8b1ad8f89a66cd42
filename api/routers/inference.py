"""POST /classify (zero-shot labels for a voice) and POST /similarity (how alike two voices sound).

Both take clips of the collection by id as JSON, or uploads as multipart; clips use their stored
vectors, uploads are embedded with the collection's model."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from api import bodies, deps
from api.errors import responses
from api.media import read_upload
from api.schemas import (
    ClassifyForm,
    ClassifyRequest,
    ClassifyResponse,
    SimilarityForm,
    SimilarityRequest,
    SimilarityResponse,
)
from api.settings import Settings
from searchengine.search import Searcher, check_template

router = APIRouter(tags=["voices"])


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Zero-shot classification of clips or an upload against free-text labels",
    responses=responses(404),
    openapi_extra=bodies.json_or_multipart(ClassifyRequest, ClassifyForm, {
        "emotion": {"clip_ids": [0, 1], "labels": ["happy", "sad", "angry", "calm"]},
        "style": {"clip_ids": [0], "labels": ["whispered", "shouted"], "template": "A {} voice."}}),
)
async def classify(request: Request, searcher: Searcher = Depends(deps.searcher),
                   settings: Settings = Depends(deps.settings), con: Any = Depends(deps.cursor)) -> dict:
    if bodies.media_type(request) == "application/json":
        body = await bodies.json_body(request, ClassifyRequest)
        check_template(body.template)
        vectors = await run_in_threadpool(searcher.clip_vectors, body.clip_ids, con)
        ids: list[int | None] = list(body.clip_ids)
    else:
        form = await request.form(max_files=1, max_fields=110)
        body = bodies.form_fields(form, ClassifyForm)
        check_template(body.template)
        audio = await read_upload(bodies.upload(body.file, "file"), settings.limits)
        vectors = (await run_in_threadpool(searcher.embed_waveform, audio.waveform))[None, :]
        ids = [None]
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
    description="JSON `{a, b}` compares two clips of the collection; multipart compares recordings `a` and `b`, "
                "where either side may instead be a clip of the collection, `a_id` or `b_id`.",
    responses=responses(404),
    openapi_extra=bodies.json_or_multipart(SimilarityRequest, SimilarityForm, {"two clips": {"a": 0, "b": 1}}),
)
async def similarity(request: Request, searcher: Searcher = Depends(deps.searcher),
                     settings: Settings = Depends(deps.settings), con: Any = Depends(deps.cursor)) -> dict:
    if bodies.media_type(request) == "application/json":
        body = await bodies.json_body(request, SimilarityRequest)
        vecs = await run_in_threadpool(searcher.clip_vectors, [body.a, body.b], con)
        a, b = vecs[0], vecs[1]
    else:
        form = await request.form(max_files=2, max_fields=4)
        body = bodies.form_fields(form, SimilarityForm)
        a = await _side(body.a, body.a_id, "a", searcher, settings, con)
        b = await _side(body.b, body.b_id, "b", searcher, settings, con)
    cosine = float(np.dot(a, b))
    return {"similarity": round(searcher.similarity(a, b), 6), "cosine": round(cosine, 6)}


async def _side(upload: Any, clip_id: int | None, name: str, searcher: Searcher, settings: Settings,
                con: Any) -> np.ndarray:
    if clip_id is not None:
        return (await run_in_threadpool(searcher.clip_vectors, [clip_id], con))[0]
    audio = await read_upload(bodies.upload(upload, name), settings.limits)
    return await run_in_threadpool(searcher.embed_waveform, audio.waveform)
