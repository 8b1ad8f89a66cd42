"""The search page's static files, served beside the API without ever standing in for it; and
`OPTIONS`, answered for every path from the routes that serve it.

The page is not mounted at `/` (a catch-all mount answers every path the API does not, so
`OPTIONS /export` or `GET /export` reached the file server, which said `Allow: GET, HEAD`). Each
entry of the page's folder gets its own route instead: `/` and `/index.html` for the page, a file
route per top-level file, a static mount per folder; a folder entry named like an API path is a
startup error. A path nobody serves is then a 404 from the router, and a method a path does not
take a 405 with `Allow` naming the ones it does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import FileResponse
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles

INDEX = "index.html"


def mount(app: FastAPI, folder: str | Path) -> Callable[[str], bool]:
    """Serve `folder` (the page) on `app`; returns the test "is this a path of the page?"."""
    folder = Path(folder)
    api_roots = {_root(path) for path in app.openapi()["paths"]} | {"docs", "redoc", "openapi.json"}
    names: set[str] = set()
    index = folder / INDEX

    async def page(_: Any) -> FileResponse:
        return FileResponse(index, media_type="text/html")

    app.router.routes.append(Route("/", page, methods=["GET"], include_in_schema=False))
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.name in api_roots:
            raise RuntimeError(f"{entry} would shadow the API path /{entry.name}: rename it")
        names.add(entry.name)
        if entry.is_dir():
            app.router.routes.append(Mount(f"/{entry.name}", StaticFiles(directory=str(entry)), name=entry.name))
        else:
            app.router.routes.append(Route(f"/{entry.name}", _file(entry), methods=["GET"], include_in_schema=False))
    return lambda path: path == "/" or _root(path) in names


def _root(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


def _file(path: Path) -> Callable[[Any], Any]:
    async def serve(_: Any) -> FileResponse:
        return FileResponse(path)

    return serve


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the routes of `app` serve at `path` (empty: no route serves it). Each method is
    tried against the routes' own matching (routers included into others do not list theirs)."""
    methods = set()
    for method in METHODS:
        scope = {"type": "http", "path": path, "root_path": "", "method": method}
        for route in app.router.routes:
            if route.matches(scope)[0] == Match.FULL:
                # A static mount takes every method, and answers 405 to all but GET and HEAD.
                if not isinstance(route, Mount) or method in ("GET", "HEAD"):
                    methods.add(method)
                break
    return sorted(methods | {"OPTIONS"}) if methods else []


class AnswerOptions:
    """ASGI middleware: `OPTIONS` gets 204 with `Allow` listing what the path takes (404 for a path
    nobody serves). A CORS preflight is answered before this, by Starlette's CORS middleware, when
    the server lists origins."""

    def __init__(self, app: Any, routes_of: FastAPI) -> None:
        self.app = app
        self.routes_of = routes_of

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        methods = allowed_methods(self.routes_of, scope["path"])
        if not methods:
            await self.app(scope, receive, send)  # the router's own 404
            return
        await send({"type": "http.response.start", "status": 204,
                    "headers": [(b"allow", ", ".join(methods).encode())]})
        await send({"type": "http.response.body", "body": b""})
