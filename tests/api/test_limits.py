"""The top_k ceiling is one constant (searchengine.search.MAX_PAGE_TOP_K), read by the request schema,
the documented multipart form and the server's default limit; no server needed to check that."""

from __future__ import annotations

from api.routers import search as search_router
from api.schemas import AudioSearchForm, SearchParams
from api.settings import Limits
from searchengine.search import MAX_PAGE_TOP_K


def test_every_top_k_bound_is_the_one_constant() -> None:
    assert SearchParams.model_json_schema()["properties"]["top_k"]["maximum"] == MAX_PAGE_TOP_K
    assert Limits().max_top_k == MAX_PAGE_TOP_K
    (audio,) = [r for r in search_router.router.routes if r.path == "/search/audio"]
    form = audio.openapi_extra["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form == {"$ref": "#/components/schemas/AudioSearchForm"}
    assert AudioSearchForm.model_json_schema()["properties"]["top_k"]["maximum"] == MAX_PAGE_TOP_K
