"""Request bodies FastAPI cannot declare by itself: operations that take either JSON or a multipart
upload (search by example, classify, similarity) read the body by hand, so their two forms are
declared here, as references to pydantic models that `api.openapi` puts in the document and the
routers validate with. One model per form means what the document says and what the server checks
cannot drift apart."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from api import deps
from api.errors import ApiError

DOCUMENTED: dict[str, type[BaseModel]] = {}
"""Models the document must define although no route parameter names them."""

AUDIO_PART = "audio/*"
"""What a recording part is declared as; the server reads any format ffmpeg decodes."""


def ref(model: type[BaseModel]) -> dict[str, str]:
    DOCUMENTED[model.__name__] = model
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _encoding(form: type[BaseModel]) -> dict[str, dict[str, str]]:
    """Per multipart field, the media type of its part: recordings are audio, a filter is JSON."""
    out = {}
    for name, schema in form.model_json_schema()["properties"].items():
        options = schema.get("anyOf", [schema])
        if any(o.get("format") == "binary" for o in options):
            # A part is a file only with a filename (RFC 7578); say so, so tools send one.
            out[name] = {"contentType": AUDIO_PART, "headers": {
                "Content-Disposition": {"schema": {"type": "string"},
                                        "example": f'form-data; name="{name}"; filename="{name}.wav"'}}}
        elif any("x-contract" in o for o in options):
            out[name] = {"contentType": "application/json"}
    return out


def json_or_multipart(json_model: type[BaseModel], form_model: type[BaseModel],
                      examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """`openapi_extra` of an operation that takes `json_model` as JSON or `form_model` as multipart."""
    as_json: dict[str, Any] = {"schema": ref(json_model)}
    if examples:
        as_json["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"requestBody": {"required": True, "content": {
        "application/json": as_json,
        "multipart/form-data": {"schema": ref(form_model), "encoding": _encoding(form_model)},
    }}}


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_body(request: Request, model: type[BaseModel]) -> Any:
    """The JSON body validated by `model` (strictly, as the document states it)."""
    try:
        data = await request.json()
    except ValueError:
        raise ApiError(400, "the body is not valid JSON", "bad_json") from None
    return deps.validate(model, data)


def form_fields(form: Any, model: type[BaseModel]) -> Any:
    """A multipart form validated by `model`.

    A multipart field holds text, so numbers arrive as digits and are read as such (the only loose
    reading the server does); a field declared as an array is sent as one part per item; a filter
    is JSON text; a recording is a file part, which the caller reads."""
    layout = _form_layout(model)
    unknown = sorted(set(form.keys()) - set(layout))
    if unknown:
        raise ApiError(422, f"unknown form fields {unknown}; this form takes {sorted(layout)}", "validation_error")
    data: dict[str, Any] = {}
    for name, (is_list, is_json) in layout.items():
        if is_list:
            values = form.getlist(name)
            if values:
                data[name] = values
            continue
        value = form.get(name)
        if value is None:
            continue
        data[name] = _json_part(value, name) if is_json else value
    return deps.validate(model, data, strict=False)


def _json_part(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        raise ApiError(422, f"the field '{name}' must be JSON text, not a file", "validation_error")
    try:
        return json.loads(value)
    except ValueError:
        raise ApiError(422, f"the field '{name}' must be JSON", "validation_error") from None


@cache
def _form_layout(model: type[BaseModel]) -> dict[str, tuple[bool, bool]]:
    out = {}
    for name, schema in model.model_json_schema()["properties"].items():
        options = schema.get("anyOf", [schema])
        out[name] = (any(o.get("type") == "array" for o in options), any("x-contract" in o for o in options))
    return out


def upload(value: Any, field: str) -> UploadFile:
    """A form field that must be a file part."""
    if not isinstance(value, UploadFile):
        raise ApiError(422, f"the field '{field}' must be an audio file (a file part of the form)", "validation_error")
    return value
