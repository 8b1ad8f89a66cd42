"""`create_app(collection_dir)`: the FastAPI application over one collection, opened read-only.

    uvicorn --factory 'api.app:app_from_env'        # CLSP_SEARCH_COLLECTION=data/mycorpus
    clsp-search serve data/mycorpus                 # the same, bound to 127.0.0.1:8000

The collection and its model are loaded once, when the app is created, so the first request is as
fast as the others and a broken collection fails at startup rather than on a user's query. While it
runs, `api.live.CollectionWatcher` swaps in each generation an indexer commits (`reload_s`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import auth, errors, openapi, page
from api.contract import contract_for
from api.limits import BodySizeLimit
from api.live import CollectionWatcher, default_audio_roots
from api.routers import clips, collection, export, inference, search
from api.settings import Limits, Settings
from searchengine.search import Searcher

REPO_WEB = Path(__file__).resolve().parent.parent / "web"


def create_app(
    collection_dir: str | os.PathLike,
    settings: Settings | None = None,
    searcher: Searcher | None = None,
) -> FastAPI:
    """The app for one collection. Pass `searcher` to share an already open one (tests, benchmarks)."""
    settings = settings or Settings()
    searcher = searcher or Searcher.open(collection_dir, model=settings.model, device=settings.device, snapshot=True)
    searcher.warm_up()

    @asynccontextmanager
    async def follow_collection(app: FastAPI) -> AsyncIterator[None]:
        watcher = CollectionWatcher(app, collection_dir, settings.reload_s) if settings.reload_s > 0 else None
        if watcher is not None:
            watcher.start()
        app.state.watcher = watcher
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()

    app = FastAPI(
        title="clsp-search",
        version="0.1.0",
        description="Find voices by describing them or by example: CLSP embeddings, FAISS, DuckDB.",
        generate_unique_id_function=lambda route: route.name,  # operation ids: search_text, export, ...
        lifespan=follow_collection,
    )
    app.state.searcher = searcher
    app.state.settings = settings
    app.state.audio_roots = settings.audio_roots or default_audio_roots(searcher)
    errors.install(app)
    # Multipart overhead on top of the audio itself is small; allow 1 MB of it.
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_upload_bytes + 1024 * 1024)
    for module in (search, clips, inference, export, collection):
        app.include_router(module.router, dependencies=[Depends(openapi.enforce_media_type)])
    openapi.install(app, lambda: contract_for(app.state.searcher.columns), lambda: bool(settings.api_keys))
    # A non-editable install (the Docker image) has no repository next to the package: it names the
    # page's folder with CLSP_SEARCH_WEB_DIR instead.
    web = settings.web_dir or os.environ.get("CLSP_SEARCH_WEB_DIR") or REPO_WEB
    is_page = page.mount(app, web) if (Path(web) / "index.html").is_file() else None
    if settings.api_keys:
        app.add_middleware(auth.RequireKey, keys=settings.api_keys, open_path=is_page)
    app.add_middleware(page.AnswerOptions, routes_of=app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Range"],
                           expose_headers=["X-Result-Count", "X-Curation-Summary", "Content-Disposition",
                                           "Content-Range", "Accept-Ranges"])
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory`: the collection from CLSP_SEARCH_COLLECTION."""
    path = os.environ.get("CLSP_SEARCH_COLLECTION")
    if not path:
        raise RuntimeError("set CLSP_SEARCH_COLLECTION to a collection directory")
    return create_app(path, Settings(model=os.environ.get("CLSP_SEARCH_MODEL") or None, api_keys=auth.keys_from()))


__all__ = ["Limits", "Settings", "create_app", "default_audio_roots"]
