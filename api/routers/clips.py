"""GET /clips/{id} and GET /clips/{id}/audio: one clip's facts, and its sound (the segment only)."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from api import deps
from api.errors import ApiError, responses
from api.media import is_under, parse_range, segment_wav
from api.schemas import MAX_CLIP_ID, ClipOut
from searchengine.search import Searcher

router = APIRouter(prefix="/clips", tags=["clips"])
ClipIdPath = Path(..., ge=0, le=MAX_CLIP_ID, description="The clip id (clips.id of the collection).", examples=[0])
WAV = {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}


@router.get("/{clip_id}", response_model=ClipOut, summary="A clip's metadata and captions", responses=responses(404))
async def get_clip(clip_id: int = ClipIdPath, searcher: Searcher = Depends(deps.searcher),
                   con: Any = Depends(deps.cursor)) -> dict:
    record = await run_in_threadpool(searcher.clip, clip_id, con)
    return {"id": clip_id, **record, "audio_url": f"/clips/{clip_id}/audio"}


@router.get(
    "/{clip_id}/audio",
    summary="The clip's audio as WAV (only its segment), with HTTP Range support",
    response_class=Response,
    responses={200: {"description": "The clip's audio", "content": WAV},
               206: {"description": "The part of it a Range header asked for", "content": WAV},
               **responses(403, 404, 416)},
)
async def get_clip_audio(request: Request, clip_id: int = ClipIdPath, searcher: Searcher = Depends(deps.searcher),
                         con: Any = Depends(deps.cursor)) -> Response:
    source = await run_in_threadpool(searcher.audio_source, clip_id, con)
    if source is None:
        raise ApiError(404, f"no clip with id {clip_id} in this collection")
    path, start, end = source
    roots = request.app.state.audio_roots
    if not is_under(path, roots):
        raise ApiError(403, f"clip {clip_id}'s file lies outside the collection's audio roots; it is not served")
    try:
        data = await run_in_threadpool(segment_wav, path, start, end)
    except (OSError, RuntimeError) as exc:
        raise ApiError(404, f"clip {clip_id}'s audio file cannot be read ({type(exc).__name__})", "audio_missing") from None
    size = len(data)
    etag = '"' + hashlib.blake2b(data, digest_size=8).hexdigest() + '"'
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Cache-Control": "private, max-age=3600"}
    if_range = request.headers.get("if-range")
    byte_range = parse_range(request.headers.get("range"), size) if (not if_range or if_range == etag) else None
    if byte_range is None:
        return Response(data, media_type="audio/wav", headers=headers)
    first, last = byte_range
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return Response(data[first : last + 1], status_code=206, media_type="audio/wav", headers=headers)
