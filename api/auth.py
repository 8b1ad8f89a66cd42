"""API keys: with keys configured, every operation but `/health` needs `Authorization: Bearer KEY`.

What stays open without a key: `GET /health` (load balancers and container health checks carry
none), the search page's static files (the page asks for the key and sends it with each call), the
OpenAPI document and its viewers (a client needs them to learn how to authenticate; they name the
collection's columns but hold no clip), and `OPTIONS` (a browser's CORS preflight never carries the
key). Everything else, unknown paths included, is refused with 401 before routing, so nothing about
the collection leaks to a caller without a key.

Keys are compared with `hmac.compare_digest` against every configured key (no early exit), so the
time taken says nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

KEY_ENV = "CLSP_SEARCH_API_KEY"
KEY_FILE_ENV = "CLSP_SEARCH_API_KEY_FILE"
MIN_KEY_LENGTH = 16
_KEY = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750 b64token: what a Bearer header may carry
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
HOW_TO_MAKE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class ApiKeyError(ValueError):
    """A key file or key that cannot be used; the message says what to fix."""


def check_key(key: str, where: str) -> str:
    if len(key) < MIN_KEY_LENGTH:
        raise ApiKeyError(f"{where}: an API key has at least {MIN_KEY_LENGTH} characters; {HOW_TO_MAKE}")
    if not _KEY.match(key):
        raise ApiKeyError(f"{where}: an API key is letters, digits and - . _ ~ + / (then = padding), as a Bearer "
                        f"header carries it; {HOW_TO_MAKE}")
    return key


def load_key_file(path: str | os.PathLike) -> tuple[str, ...]:
    """Keys from a file, one a line (several allow a key to be rotated); blank lines and # comments skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ApiKeyError(f"cannot read the API key file {path}: {exc.strerror or exc}") from None
    keys = tuple(check_key(line.strip(), f"{path}:{n}") for n, line in enumerate(text.splitlines(), 1)
                 if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise ApiKeyError(f"the API key file {path} holds no key; {HOW_TO_MAKE}")
    return keys


def keys_from(file: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> tuple[str, ...]:
    """The keys a server is given: a key file (argument, else $CLSP_SEARCH_API_KEY_FILE) and
    $CLSP_SEARCH_API_KEY, together."""
    env = os.environ if env is None else env
    keys: list[str] = []
    file = file or env.get(KEY_FILE_ENV) or None
    if file:
        keys.extend(load_key_file(file))
    if env.get(KEY_ENV, "").strip():
        keys.append(check_key(env[KEY_ENV].strip(), f"${KEY_ENV}"))
    return tuple(dict.fromkeys(keys))


def matches(given: str, keys: Iterable[bytes]) -> bool:
    """Whether `given` is one of `keys`, in time that does not depend on where a guess went wrong."""
    candidate = given.encode("utf-8", "replace")
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


class RequireKey:
    """ASGI middleware: 401 (the error model, `WWW-Authenticate: Bearer`) without one of `keys`."""

    def __init__(self, app: Any, keys: Iterable[str], open_path: Any = None) -> None:
        self.app = app
        self.keys = tuple(k.encode("utf-8") for k in keys)
        self.open_path = open_path or (lambda path: False)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or scope["path"] in OPEN_PATHS \
                or self.open_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip() and matches(token.strip(), self.keys):
            await self.app(scope, receive, send)
            return
        if not header:
            message, challenge = "this server needs an API key: send the header 'Authorization: Bearer KEY'", \
                'Bearer realm="clsp-search"'
        else:
            message, challenge = "the API key is not one of this server's keys (send 'Authorization: Bearer KEY')", \
                'Bearer realm="clsp-search", error="invalid_token"'
        body = json.dumps({"error": "unauthorized", "message": message, "status": 401, "detail": None}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge.encode())]})
        await send({"type": "http.response.body", "body": body})
