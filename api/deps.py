"""What routers get injected: the searcher of the app and a DuckDB cursor of the request's own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from api.settings import Settings
from searchengine.search import Searcher

# The dependencies below are `async def` although they never await: FastAPI runs a plain `def`
# dependency (and each side of a generator one) in its thread pool, and those hops
# cost more than the work they wrap (five hops a search, about a millisecond).


async def searcher(request: Request) -> Searcher:
    """The searcher this request uses from start to end: taken once, so a generation swapped in by
    the collection watcher meanwhile (api.live) never mixes into a request that began before it."""
    pinned = getattr(request.state, "searcher", None)
    if pinned is None:
        pinned = request.state.searcher = request.app.state.searcher
    return pinned


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def cursor(request: Request) -> AsyncIterator[Any]:
    """One DuckDB cursor per request, closed when the response is done (a connection is not used by
    two threads at once: each request hands its own to the pool thread that runs its queries)."""
    con = (await searcher(request)).cursor()
    try:
        yield con
    finally:
        con.close()


def validate(model: type[BaseModel], data: Any, where: str = "body", strict: bool | None = None) -> Any:
    """Validate data that did not come through FastAPI's own body parsing (multipart forms, a JSON
    body read by hand) with the same 422 answer. `strict=False` reads text as numbers (form fields)."""
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": (where, *e.get("loc", ()))} for e in exc.errors(include_url=False, include_context=False)]
        ) from None


def form_json(value: Any, field: str) -> Any:
    """A form field that carries JSON (the filter of a multipart search)."""
    if value is None or value == "":
        return None
    try:
        return json.loads(value)
    except (TypeError, json.JSONDecodeError):
        raise RequestValidationError(
            [{"loc": ("body", field), "msg": "must be JSON", "type": "json_invalid"}]
        ) from None
