"""Query understanding and capability notices over HTTP: what POST /search/text says it understood,
`understand: false` as the model's ranking, dropping a constraint, and the fields in the OpenAPI document.

The shared collection carries the generated manifest's gender labels, which the understood gender
constraint reads (a label is certain; a bare collection would read the stored estimate instead)."""

from __future__ import annotations

import httpx


def _search(client: httpx.Client, **body) -> dict:
    r = client.post("/search/text", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_response_says_what_it_understood_and_what_nothing_ranks(client: httpx.Client) -> None:
    body = _search(client, query="an angry man with a French accent, speaking quickly", top_k=5, understand=True)
    understood = {u["key"]: u for u in body["understood"]}
    assert understood["gender:male"]["status"] == "applied" and understood["gender:male"]["words"] == "man"
    # pace was understood, but this collection was indexed without measured attributes
    assert understood["pace:high"]["status"] == "not measured in this collection"
    assert {(u["words"], u["property"]) for u in body["uncovered"]} == {("angry", "emotion"), ("french accent", "accent")}
    notices = {n["property"]: n for n in body["notices"]}
    assert set(notices) == {"emotion", "accent"}
    assert "cannot rank emotion" in notices["emotion"]["message"] and "released CLSP" in notices["emotion"]["who_can"]
    assert "0.054" in notices["accent"]["message"]  # its own measured figure, not a guess


def test_understand_false_is_the_models_ranking(client: httpx.Client, searcher) -> None:
    from searchengine.search import SearchOptions

    query = "a man speaking"
    off = _search(client, query=query, top_k=40, understand=False)
    model = searcher.search_vector(searcher.embed_text(query), SearchOptions(top_k=40))
    assert [h["id"] for h in off["hits"]] == [h.id for h in model.hits]
    assert off["understood"] == [] and off["uncovered"] == []
    # dropping the only constraint gives the same ranking, and says so
    dropped = _search(client, query=query, top_k=40, understand=True, drop=["gender:male"])
    assert [h["id"] for h in dropped["hits"]] == [h["id"] for h in off["hits"]]
    assert [(u["key"], u["status"]) for u in dropped["understood"]] == [("gender:male", "dropped")]


def test_an_understood_gender_demotes_the_other_gender_and_keeps_the_models_order(client: httpx.Client) -> None:
    query = "a man speaking"
    off = {h["id"]: h for h in _search(client, query=query, top_k=40, understand=False)["hits"]}
    on = _search(client, query=query, top_k=40, understand=True)["hits"]
    assert len(on) == len(off) == 40
    men = [h for h in on if h["clip"]["gender"] == "male"]
    women = [h for h in on if h["clip"]["gender"] == "female"]
    assert men and women
    for h in men:  # a clip that meets the constraint keeps its model score ...
        assert h["score"] == off[h["id"]]["score"]
    for h in women:  # ... one that does not loses some
        assert h["score"] < off[h["id"]]["score"]
    assert [h["id"] for h in men] == sorted((h["id"] for h in men), key=lambda i: -off[i]["score"])
    share = lambda hits: sum(h["clip"]["gender"] == "male" for h in hits[:10]) / 10  # noqa: E731
    assert share(on) >= share(sorted(off.values(), key=lambda h: -h["score"]))


def test_bad_drop_and_understand_values_are_422(client: httpx.Client) -> None:
    assert client.post("/search/text", json={"query": "a man", "understand": "maybe"}).status_code == 422
    assert client.post("/search/text", json={"query": "a man", "drop": [""]}).status_code == 422
    assert client.post("/search/text", json={"query": "a man", "drop": ["x"] * 33}).status_code == 422


def test_the_fields_are_in_the_openapi_document(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"understand", "drop"} <= set(schemas["TextSearchRequest"]["properties"])
    assert {"understood", "uncovered", "notices"} <= set(schemas["SearchResponse"]["properties"])
    assert {"key", "label", "status", "column"} <= set(schemas["UnderstoodOut"]["properties"])
    assert {"message", "who_can"} <= set(schemas["NoticeOut"]["properties"])
