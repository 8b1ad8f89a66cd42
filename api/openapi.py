"""The OpenAPI 3.1 document of this server, complete enough that tools nobody here wrote work from it.

FastAPI writes the operations from the routes and the pydantic models; this module adds what it
cannot know and removes what is not true of this server:
- the request models of operations that read their body by hand (`api.bodies.DOCUMENTED`), and the
  collection's own `Filter` and `Ranges` schemas (`api.contract`) where the models leave a marker;
- the limits the operator set (`x-limit` markers) instead of the schema's ceilings, and fields that
  need a column this collection lacks (`x-requires-column`) left out;
- every error an operation can answer, all with the one error model `ErrorOut`, in place of
  FastAPI's own validation-error models, which this server never sends;
- the bearer-key security scheme when the server requires keys;
- request examples lifted from the models' `examples` onto each operation.
Rules that follow from an operation's shape (a body can be too large, malformed or of the wrong
media type) are applied here to every operation, so a new endpoint is documented the same way
without repeating them; what only some operations answer (404, 403, 416) is declared on the route.

`enforce_media_type` is the matching check at request time: a body whose media type the document
does not list for the operation is answered 415 before anything reads it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from api.bodies import DOCUMENTED, media_type
from api.contract import REF, Contract
from api.errors import DESCRIPTIONS, ApiError
from api.schemas import ErrorOut

BODY_ERRORS = (400, 413, 415, 422)
PARAMETER_ERRORS = (422,)
SECURITY_SCHEME = "bearerKey"
OPEN_OPERATIONS = frozenset({("get", "/health")})
"""Operations answered without a key: a load balancer's health check carries none."""


def install(app: FastAPI, contract: Callable[[], Contract], auth: Callable[[], bool]) -> None:
    """Make `app.openapi()` return this document; it is rebuilt when the collection's columns change."""
    built: dict[Any, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        current = contract()
        key = (id(current), auth())
        if key not in built:
            built.clear()
            built[key] = document(app, current, secured=key[1])
        return built[key]

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI, contract: Contract, secured: bool) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, openapi_version="3.1.0", description=app.description,
                      routes=app.routes, tags=app.openapi_tags)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    extra = [*DOCUMENTED.values(), ErrorOut]
    _, defs = models_json_schema([(m, "validation") for m in extra], ref_template=REF)
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, _without_null_defaults(schema))
    schemas.update(copy.deepcopy(contract.schemas))
    limits = vars(app.state.settings.limits)
    doc = _resolve_markers(doc, limits, set(contract.columns))
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            _errors(operation)
            _examples(operation, doc["components"]["schemas"])
            if secured:
                operation["security"] = [] if (method, path) in OPEN_OPERATIONS else [{SECURITY_SCHEME: []}]
                if (method, path) not in OPEN_OPERATIONS:
                    operation["responses"]["401"] = _error_response(401)
    if secured:
        doc["components"]["securitySchemes"] = {SECURITY_SCHEME: {
            "type": "http", "scheme": "bearer",
            "description": "The server's API key, sent as `Authorization: Bearer KEY`."}}
    return doc


def _resolve_markers(node: Any, limits: dict[str, Any], columns: set[str]) -> Any:
    """Replace the models' markers by what they stand for on this server."""
    if isinstance(node, list):
        return [_resolve_markers(v, limits, columns) for v in node]
    if not isinstance(node, dict):
        return node
    if "x-contract" in node:
        return {"$ref": REF.format(model=node["x-contract"])}
    out = {}
    for key, value in node.items():
        if key == "x-limit":
            continue
        out[key] = _resolve_markers(value, limits, columns)
    if "x-limit" in node:
        out["maximum"] = min(out.get("maximum", limits[node["x-limit"]]), limits[node["x-limit"]])
    if isinstance(out.get("properties"), dict):
        gone = [k for k, v in node["properties"].items()
                if isinstance(v, dict) and v.get("x-requires-column") not in (None, *columns)]
        for name in gone:
            out["properties"].pop(name)
        for value in out["properties"].values():
            if isinstance(value, dict):
                value.pop("x-requires-column", None)
        if gone and "required" in out:
            out["required"] = [r for r in out["required"] if r not in gone]
    return out


def _without_null_defaults(schema: Any) -> Any:
    """pydantic writes `"default": null` on optional fields that may not be sent as null; a client
    generator would read it as nullable."""
    if isinstance(schema, dict):
        return {k: _without_null_defaults(v) for k, v in schema.items() if not (k == "default" and v is None)}
    if isinstance(schema, list):
        return [_without_null_defaults(v) for v in schema]
    return schema


def _error_response(status: int) -> dict[str, Any]:
    return {"description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}}}


def _errors(operation: dict[str, Any]) -> None:
    """Every status the operation can answer, errors with ErrorOut."""
    responses = operation.setdefault("responses", {})
    codes: set[int] = {int(c) for c in responses if c.isdigit() and int(c) >= 400}
    if operation.get("requestBody"):
        codes.update(BODY_ERRORS)
    if operation.get("parameters"):
        codes.update(PARAMETER_ERRORS)
    if not operation.get("requestBody") and not operation.get("parameters"):
        codes.discard(422)
    for code in sorted(codes):
        responses[str(code)] = _error_response(code) | {"description": responses.get(str(code), {}).get(
            "description") or DESCRIPTIONS[code]}


def _examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A JSON body's examples (from its model's `examples`) shown on the operation."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if not body or "examples" in body:
        return
    ref = body.get("schema", {})
    options = [ref] if "$ref" in ref else ref.get("anyOf", [])
    examples: dict[str, Any] = {}
    for option in options:
        name = option.get("$ref", "").rsplit("/", 1)[-1]
        for i, value in enumerate(schemas.get(name, {}).get("examples", [])):
            examples[f"{name}{i + 1}" if len(options) > 1 or i else name] = {"value": copy.deepcopy(value)}
    if examples:
        body["examples"] = examples


async def enforce_media_type(request: Request) -> None:
    """A route dependency: 415 for a body in a media type the operation does not take (async: a
    plain `def` dependency would cost every request a hop through the thread pool)."""
    route = request.scope.get("route")
    operation = (getattr(route, "openapi_extra", None) or {}).get("requestBody")
    if operation is None and getattr(route, "body_field", None) is None:
        return  # no body to check
    declared = set(operation["content"]) if operation else {"application/json"}
    got = media_type(request)
    if got not in declared:
        raise ApiError(415, f"this operation takes {' or '.join(sorted(declared))} (got {got or 'no content type'})")
