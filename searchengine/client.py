"""A thin, typed Python client of the clsp-search HTTP API (`clsp-search serve`).

    from searchengine.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as api:      # or $CLSP_SEARCH_API_KEY
        page = api.search_text("a breathy young woman whispering", top_k=5,
                               filter={"field": "duration", "op": ">", "value": 3})
        for hit in page.hits:
            print(hit.rank, hit.score, hit.caption, hit.id)
        like = api.search_audio("query.wav")            # or bytes, or an open file
        api.classify(["calm", "angry"], clip_ids=[hit.id for hit in page.hits])
        api.similarity(page.hits[0].id, "other.wav")    # a clip id or a recording on either side
        manifest = api.export("calm older man", n=200, format="csv", max_per_speaker=5)

Each method is one HTTP call and reads like it; the answer comes back as small dataclasses holding
the fields most code needs, with the whole JSON answer in `raw`. A refused call raises `ApiError`
with the server's status, error code and message. It speaks HTTP only (it needs `httpx`, nothing
from the server side); clients for other languages can be generated from the server's
`/openapi.json`, which is complete and checked (see the README).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Union

import httpx

KEY_ENV = "CLSP_SEARCH_API_KEY"
ExportFormat = Literal["jsonl", "csv", "nemo", "lhotse", "hf", "ljspeech"]
BINARY_EXPORT_FORMATS = frozenset({"hf", "ljspeech"})

Audio = Union[str, os.PathLike, bytes, IO[bytes]]  # noqa: UP007 - a type alias read at run time
"""A recording: a path, its bytes, or an open binary file."""


class ApiError(Exception):
    """The server refused a call; `status`, `error` (a stable code) and `message` say why."""

    def __init__(self, status: int, error: str, message: str, detail: Any = None) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status, self.error, self.message, self.detail = status, error, message, detail


@dataclass(frozen=True)
class Hit:
    """One clip of a result page."""

    id: int
    rank: int
    score: float
    matched: str
    caption: str | None
    clip: dict[str, Any]
    captions: dict[str, Any]
    audio_url: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Hit:
        caption = data.get("captions", {}).get("global") or (data.get("caption") or {}).get("text")
        return cls(id=data["id"], rank=data["rank"], score=data["score"], matched=data["matched"], caption=caption,
                   clip=dict(data.get("clip") or {}), captions=dict(data.get("captions") or {}),
                   audio_url=data["audio_url"])


@dataclass(frozen=True)
class Page:
    """A page of search results."""

    hits: list[Hit]
    candidates: int
    took_ms: float
    excluded: list[int]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Page:
        return cls(hits=[Hit.from_json(h) for h in data["hits"]], candidates=data["candidates"],
                   took_ms=data["took_ms"], excluded=list(data.get("excluded") or []), raw=data)


@dataclass(frozen=True)
class Classification:
    """Zero-shot label probabilities of one clip (`clip_id`) or of an upload (`clip_id` None)."""

    clip_id: int | None
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Similarity:
    similarity: float  # 0..1, (cosine + 1) / 2
    cosine: float


class Client:
    """The API of one server. `api_key` defaults to $CLSP_SEARCH_API_KEY; pass `transport` to route
    the calls elsewhere (httpx's test transports)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        key = api_key if api_key is not None else os.environ.get(KEY_ENV) or None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------------------ calls
    def health(self) -> dict[str, Any]:
        """GET /health (needs no key)."""
        return self._call("GET", "/health").json()

    def collection(self) -> dict[str, Any]:
        """GET /collection: counts, model, limits, and the facets of the filterable columns."""
        return self._call("GET", "/collection").json()

    def search_text(self, query: str, *, top_k: int = 10, offset: int = 0, filter: Any = None,  # noqa: A002
                    indexes: Sequence[str] | None = None, fusion: str | None = None) -> Page:
        """POST /search/text: clips matching a description."""
        body = _without_none({"query": query, "top_k": top_k, "offset": offset, "filter": filter,
                              "indexes": list(indexes) if indexes else None, "fusion": fusion})
        return Page.from_json(self._call("POST", "/search/text", json=body).json())

    def search_clips(self, clip_ids: Sequence[int], *, top_k: int = 10, offset: int = 0,
                     filter: Any = None) -> Page:  # noqa: A002
        """POST /search/audio (JSON): clips that sound like these clips of the collection."""
        body = _without_none({"clip_ids": list(clip_ids), "top_k": top_k, "offset": offset, "filter": filter})
        return Page.from_json(self._call("POST", "/search/audio", json=body).json())

    def search_audio(self, audio: Audio, *, top_k: int = 10, offset: int = 0, filter: Any = None,  # noqa: A002
                     filename: str | None = None) -> Page:
        """POST /search/audio (multipart): clips that sound like a recording."""
        import json

        data = {"top_k": str(top_k), "offset": str(offset)}
        if filter is not None:
            data["filter"] = json.dumps(filter)
        files = {"file": _part(audio, filename or "query.wav")}
        return Page.from_json(self._call("POST", "/search/audio", data=data, files=files).json())

    def clip(self, clip_id: int) -> dict[str, Any]:
        """GET /clips/{id}: a clip's columns and captions."""
        return self._call("GET", f"/clips/{int(clip_id)}").json()

    def clip_audio(self, clip_id: int) -> bytes:
        """GET /clips/{id}/audio: the clip's segment as WAV bytes."""
        return self._call("GET", f"/clips/{int(clip_id)}/audio").content

    def classify(self, labels: Sequence[str], *, clip_ids: Sequence[int] | None = None, audio: Audio | None = None,
                 template: str | None = None) -> list[Classification]:
        """POST /classify: zero-shot probabilities of `labels` for clips of the collection or a recording."""
        if (clip_ids is None) == (audio is None):
            raise ValueError("give clip_ids or audio, not both")
        if audio is None:
            body = _without_none({"clip_ids": list(clip_ids or ()), "labels": list(labels), "template": template})
            answer = self._call("POST", "/classify", json=body)
        else:
            data = _without_none({"labels": list(labels), "template": template})
            answer = self._call("POST", "/classify", data=data, files={"file": _part(audio, "clip.wav")})
        return [Classification(r["clip_id"], r["label"], dict(r["probabilities"])) for r in answer.json()["results"]]

    def similarity(self, a: int | Audio, b: int | Audio) -> Similarity:
        """POST /similarity: how alike two voices sound; each side a clip id or a recording."""
        if isinstance(a, int) and isinstance(b, int):
            answer = self._call("POST", "/similarity", json={"a": a, "b": b})
        else:
            data, files = {}, {}
            for name, side in (("a", a), ("b", b)):
                if isinstance(side, int):
                    data[f"{name}_id"] = str(side)
                else:
                    files[name] = _part(side, f"{name}.wav")
            answer = self._call("POST", "/similarity", data=data, files=files)
        body = answer.json()
        return Similarity(body["similarity"], body["cosine"])

    def export(self, query: str, *, n: int = 100, format: ExportFormat | str = "jsonl",  # noqa: A002
               filter: Any = None, **curation: Any) -> str | bytes:  # noqa: A002
        """POST /export of a query's best `n` clips: manifest text for jsonl, csv, nemo and lhotse; the
        file's bytes for hf (parquet) and ljspeech (zip), which text decoding would corrupt. `curation`:
        min_quality, ranges, max_per_speaker, diverse_speakers, dedup_threshold, indexes, fusion,
        sample_rate (as the API names them)."""
        body = _without_none({"query": query, "n": n, "format": format, "filter": filter, **curation})
        return _export_body(self._call("POST", "/export", json=body), format)

    def export_selection(self, clips: Sequence[int | Hit | Mapping[str, Any]],
                         format: ExportFormat | str = "jsonl") -> str | bytes:  # noqa: A002
        """POST /export of clips picked by hand, in this order: ids, or hits (their score and rank are
        written). Text or bytes as `export` returns them."""
        ids: list[Any] = []
        for c in clips:
            if isinstance(c, Hit):
                ids.append({"id": c.id, "score": c.score, "rank": c.rank})
            else:
                ids.append(dict(c) if isinstance(c, Mapping) else int(c))
        return _export_body(self._call("POST", "/export", json={"ids": ids, "format": format}), format)

    # ------------------------------------------------------------------------------ plumbing
    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise ApiError(response.status_code, body.get("error", "error"),
                           body.get("message", response.reason_phrase), body.get("detail"))
        return response


def _export_body(response: httpx.Response, format: str) -> str | bytes:  # noqa: A002
    """Binary exports (a parquet file, a zip) as bytes; line formats as text."""
    return response.content if format in BINARY_EXPORT_FORMATS else response.text


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _part(audio: Audio, default_name: str) -> tuple[str, Any, str]:
    """A multipart file part; a file part needs a filename, or servers read it as text."""
    if isinstance(audio, (bytes, bytearray)):
        return default_name, bytes(audio), "application/octet-stream"
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        return path.name, path.read_bytes(), "application/octet-stream"
    return Path(getattr(audio, "name", default_name)).name, audio, "application/octet-stream"
