"""Every failure as JSON `{"error", "message", "status", "detail"}`: bad input is a 4xx that says what
was wrong, never a 500. Library exceptions are mapped here once, so routers just raise them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from searchengine.audio import AudioError, NotAudioError
from searchengine.filters import FilterError
from searchengine.search import ClipNotFoundError, SearchError

log = logging.getLogger("clsp_search.api")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          413: "too_large", 415: "unsupported_media_type", 416: "range_not_satisfiable", 422: "validation_error"}

DESCRIPTIONS = {
    400: "The request cannot be used as sent: malformed JSON, an unreadable or empty upload",
    401: "No API key, or not one of this server's keys: send `Authorization: Bearer KEY`",
    403: "The clip's file lies outside the collection's audio roots",
    404: "No clip with that id in this collection",
    413: "The body or the upload is larger, or the recording longer, than this server accepts",
    415: "The body is not in a media type the operation takes, or the upload is not audio",
    416: "The range starts past the end of the clip's audio",
    422: "A value breaks the request schema: the message names the field",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route that can answer these errors (those every body can answer are added
    for all operations by `api.openapi`)."""
    from api.schemas import ErrorOut

    return {code: {"model": ErrorOut, "description": DESCRIPTIONS[code]} for code in codes}


class ApiError(Exception):
    """An error a router raises with its status and code chosen."""

    def __init__(self, status: int, message: str, error: str | None = None, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, headers
        self.error = error or _CODES.get(status, "error")


def error_response(status: int, error: str, message: str, detail: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": error, "message": message, "status": status, "detail": jsonable_encoder(detail)}
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.message, exc.detail, exc.headers)

    @app.exception_handler(FilterError)
    async def _filter(_: Request, exc: FilterError) -> JSONResponse:
        return error_response(400, "bad_filter", str(exc))

    @app.exception_handler(SearchError)
    async def _search(_: Request, exc: SearchError) -> JSONResponse:
        return error_response(400, "bad_request", str(exc))

    @app.exception_handler(ClipNotFoundError)
    async def _missing(_: Request, exc: ClipNotFoundError) -> JSONResponse:
        return error_response(404, "not_found", str(exc), {"ids": exc.ids})

    @app.exception_handler(AudioError)
    async def _audio(_: Request, exc: AudioError) -> JSONResponse:
        # The server-side temporary path means nothing to the client: report the reason only.
        message = str(exc).split(": ", 1)[1] if exc.path and str(exc).startswith(exc.path) else str(exc)
        if isinstance(exc, NotAudioError):
            return error_response(415, "unsupported_media_type", f"the upload is not readable audio: {message}")
        return error_response(400, exc.reason, f"the upload cannot be used: {message}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            return error_response(400, "bad_json", "the body is not valid JSON")
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
        return error_response(422, "validation_error", message, detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), str(exc.detail),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", f"internal error: {type(exc).__name__}")
