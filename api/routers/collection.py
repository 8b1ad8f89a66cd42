"""GET /collection (what is in it and what can be filtered) and GET /health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from api import deps
from api.schemas import CollectionOut, HealthOut
from api.settings import Settings
from searchengine.search import DEFAULT_FUSION, DEFAULT_INDEXES, DEFAULT_VOICE_WEIGHT, Searcher

router = APIRouter(tags=["collection"])


@router.get("/collection", response_model=CollectionOut,
            summary="Stats, model, limits and facets of the filterable columns")
async def collection(searcher: Searcher = Depends(deps.searcher), settings: Settings = Depends(deps.settings),
                     con: Any = Depends(deps.cursor)) -> dict:
    stats = await run_in_threadpool(searcher.stats)
    facets = await run_in_threadpool(searcher.facets, con)
    stats.pop("path", None)  # where it lives on the server is not the client's business
    return {
        **stats,
        "defaults": {"indexes": list(DEFAULT_INDEXES), "fusion": DEFAULT_FUSION, "voice_weight": DEFAULT_VOICE_WEIGHT},
        "limits": vars(settings.limits),
        "facets": facets,
        "columns": searcher.column_info(),
    }


@router.get("/health", response_model=HealthOut, summary="Liveness: the collection is open and answers")
async def health(searcher: Searcher = Depends(deps.searcher), con: Any = Depends(deps.cursor)) -> dict:
    clips = await run_in_threadpool(searcher.clip_count, con)
    return {"status": "ok", "clips": clips, "model_id": searcher.collection.model_id}
