"""`clsp-search serve`: the HTTP API and the search page over one collection.

Keys: `--api-key-file` (one key a line) and $CLSP_SEARCH_API_KEY make every operation but /health
need `Authorization: Bearer KEY`. A server bound to an address other people can reach refuses to
start without a key unless `--no-auth` says that is meant: anyone who reaches the port could read
every clip of the collection.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

_err = Console(stderr=True)


def _fail(message: str) -> None:
    _err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def serve(
    collection: Annotated[Path, typer.Argument(help="Collection directory (made by `clsp-search index`).")],
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the server to the network "
                                      "(then a key is required, or --no-auth).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    model: Annotated[str | None, typer.Option(
        "--model", help="Model name or checkpoint dir (default: the collection's).")] = None,
    audio_root: Annotated[
        list[Path] | None, typer.Option("--audio-root", help="Serve audio only from under these directories.")
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted.")] = 50.0,
    max_audio_seconds: Annotated[float, typer.Option(help="Longest uploaded recording accepted.")] = 300.0,
    api_key_file: Annotated[Path | None, typer.Option(
        "--api-key-file", envvar="CLSP_SEARCH_API_KEY_FILE",
        help="Require one of the keys in this file (one a line) as 'Authorization: Bearer KEY' on every operation "
             "but /health. $CLSP_SEARCH_API_KEY adds a key.")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve without keys on a non-loopback address (anyone who reaches the port reads "
                          "every clip).")] = False,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="A browser origin (scheme://host:port) allowed to call the API from its pages; "
                              "repeat for several. Without one, CORS stays off.")] = None,
) -> None:
    """Serve the HTTP API (and the web page) for COLLECTION."""
    from api.auth import ApiKeyError, keys_from

    try:
        keys = keys_from(api_key_file)
    except ApiKeyError as exc:
        _fail(str(exc))
    if keys and no_auth:
        _fail("--no-auth and an API key contradict each other: drop one")
    if not keys and not no_auth and not is_loopback(host):
        _fail(f"binding {host} exposes every clip to whoever reaches the port: give --api-key-file PATH (or set "
              "CLSP_SEARCH_API_KEY), or pass --no-auth to serve without keys on purpose")

    import uvicorn

    from api.app import create_app
    from api.settings import Limits, Settings
    from searchengine.store import CollectionError

    settings = Settings(
        limits=Limits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_audio_seconds=max_audio_seconds),
        audio_roots=tuple(p.resolve() for p in audio_root) if audio_root else None,
        model=model,
        api_keys=keys,
        cors_origins=tuple(cors_origin or ()),
    )
    try:
        app = create_app(collection, settings)
    except CollectionError as exc:
        _fail(str(exc))
    shown = f"[{host}]" if ":" in host else host
    how = f"{len(keys)} API key{'s' if len(keys) != 1 else ''}" if keys else "no API key"
    _err.print(f"Serving {collection} on http://{shown}:{port} with {how}  (API docs: http://{shown}:{port}/docs)",
               highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="info")
