""""Sounds like this" = style + timbre: the voice weight fuses the speech and speaker indexes.

Runs on the curation collection (twelve generated clips of three voices, indexed with measured
attributes, so every clip has a speaker vector in `speaker.faiss`). Expected rankings are computed here
from the stored vectors with numpy: weight 0 must be the speech index's ranking, 1 the speaker
index's, and a weight between the weighted sum of the two cosines.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cli import query as query_cli


def _stored(searcher, kind: str) -> tuple[list[int], np.ndarray]:
    from searchengine.store import faiss_index as fi

    ids, vectors = fi.ids_and_vectors(searcher.collection.index(kind))
    return [int(i) for i in ids], np.asarray(vectors, np.float32)


def _expected(searcher, query: int, weight: float) -> list[tuple[int, float]]:
    """(clip, score) of every other clip, best first, by (1 - w) cos(speech) + w cos(speaker)."""
    s_ids, s_vec = _stored(searcher, "speech")
    k_ids, k_vec = _stored(searcher, "speaker")
    speech = dict(zip(s_ids, s_vec @ s_vec[s_ids.index(query)], strict=True))
    speaker = dict(zip(k_ids, k_vec @ k_vec[k_ids.index(query)], strict=True))
    scores = {c: (1 - weight) * speech[c] + weight * speaker[c] for c in s_ids if c != query}
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_weight_0_is_the_speech_index_1_the_speaker_index_and_between_a_fusion(curate_searcher, weight):
    from searchengine.search import SearchOptions

    s_ids, _ = _stored(curate_searcher, "speech")
    k_ids, _ = _stored(curate_searcher, "speaker")
    assert sorted(s_ids) == sorted(k_ids) and len(s_ids) >= 8  # every clip has both vectors
    query = s_ids[0]
    page = curate_searcher.search_clips([query], SearchOptions(top_k=len(s_ids), voice_weight=weight))
    expected = _expected(curate_searcher, query, weight)
    assert [h.id for h in page.hits] == [c for c, _ in expected]
    assert [h.score for h in page.hits] == pytest.approx([s for _, s in expected], abs=1e-5)
    assert page.voice_weight == weight
    if weight == 0.0:
        assert page.indexes == ["speech"] and page.fusion is None and all(h.matched == "speech" for h in page.hits)
    elif weight == 1.0:
        assert page.indexes == ["speaker"] and page.fusion is None and all(h.matched == "speaker" for h in page.hits)
    else:
        assert page.indexes == ["speech", "speaker"] and page.fusion == "voice"
        assert all(set(h.scores) == {"speech", "speaker"} for h in page.hits)


def test_the_weight_changes_the_ranking_and_defaults_to_the_chosen_one(curate_searcher):
    """On these voices style and timbre disagree somewhere, so the two ends rank differently; the
    default is `DEFAULT_VOICE_WEIGHT`; a weight outside [0, 1] is refused."""
    from searchengine.search import DEFAULT_VOICE_WEIGHT, SearchError, SearchOptions

    s_ids, _ = _stored(curate_searcher, "speech")
    orders = {w: [h.id for h in curate_searcher.search_clips([s_ids[0]], SearchOptions(top_k=11, voice_weight=w)).hits]
              for w in (0.0, 1.0)}
    assert orders[0.0] != orders[1.0]
    assert curate_searcher.search_clips([s_ids[0]], SearchOptions(top_k=3)).voice_weight == DEFAULT_VOICE_WEIGHT
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(SearchError, match="voice_weight"):
            curate_searcher.search_clips([s_ids[0]], SearchOptions(voice_weight=bad))


def test_filters_and_text_queries(curate_searcher):
    """A filter holds for the speaker side too; a text query has no voice weight."""
    from searchengine.search import SearchOptions

    s_ids, _ = _stored(curate_searcher, "speech")
    keep = sorted(s_ids)[::2]
    spec = {"field": "id", "op": "in", "value": keep}
    page = curate_searcher.search_clips([s_ids[1]], SearchOptions(top_k=12, voice_weight=0.7, filter=spec))
    assert page.hits and {h.id for h in page.hits} <= set(keep) - {s_ids[1]}
    assert curate_searcher.search_text("a calm voice", SearchOptions(top_k=2)).voice_weight is None


def test_http_takes_voice_weight_for_clips_and_uploads(curate_client, curate_searcher):
    s_ids, _ = _stored(curate_searcher, "speech")
    query = s_ids[0]
    body = curate_client.post("/search/audio", json={"clip_ids": [query], "top_k": 11, "voice_weight": 1}).json()
    assert body["voice_weight"] == 1.0 and body["indexes"] == ["speaker"]
    assert [h["id"] for h in body["hits"]] == [c for c, _ in _expected(curate_searcher, query, 1.0)]
    refused = curate_client.post("/search/audio", json={"clip_ids": [query], "voice_weight": 1.5})
    assert refused.status_code == 422 and "voice_weight" in refused.text

    # An upload of the clip's own file: its speaker vector is computed as indexing computed the
    # stored one, so by voice alone it ranks the other clips as the clip itself does.
    path = Path(curate_searcher.clip(query)["clip"]["source_path"])
    with open(path, "rb") as f:
        upload = curate_client.post("/search/audio", files={"file": ("q.wav", f, "audio/wav")},
                                    data={"top_k": "11", "voice_weight": "1"}).json()
    assert upload["voice_weight"] == 1.0
    assert [h["id"] for h in upload["hits"]] == [h["id"] for h in body["hits"]]
    with open(path, "rb") as f:
        style = curate_client.post("/search/audio", files={"file": ("q.wav", f, "audio/wav")},
                                   data={"top_k": "11", "voice_weight": "0"}).json()
    assert style["voice_weight"] == 0.0 and style["indexes"] == ["speech"]


def test_cli_similar_takes_voice_weight(curate_collection: Path, curate_searcher):
    app = typer.Typer()
    app.command("similar")(query_cli.similar)
    s_ids, _ = _stored(curate_searcher, "speech")
    result = CliRunner().invoke(app, [str(curate_collection), str(s_ids[0]), "--voice-weight", "1", "--json", "-k", "11"])
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert page["voice_weight"] == 1.0
    assert [h["id"] for h in page["hits"]] == [c for c, _ in _expected(curate_searcher, s_ids[0], 1.0)]
    table = CliRunner().invoke(app, [str(curate_collection), str(s_ids[0]), "--voice-weight", "0.3", "-k", "2"])
    assert table.exit_code == 0 and "voice weight 0.3" in table.stdout
    bad = CliRunner().invoke(app, [str(curate_collection), str(s_ids[0]), "--voice-weight", "2"])
    assert bad.exit_code == 2
