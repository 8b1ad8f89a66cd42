"""A client generated from the published document by a tool nobody here wrote (openapi-python-client)
works: it is generated without a warning (no missing reference, no dropped operation), and every
kind of call a user makes goes through it against the real key-protected server: search by text,
by clip ids and by upload, classify (clips and an upload), similarity, export (a query and a
selection), a clip's record and audio, with the key, and a 401 without it.

The generator's only configuration: no formatter run afterwards, and the media types it has no
parser for (WAV audio, NDJSON, CSV) read as bytes or text."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import API_KEY

CONFIG = """\
post_hooks: []
content_type_overrides:
  audio/wav: application/octet-stream
  application/x-ndjson: text/plain
  text/csv: text/plain
"""


@pytest.fixture(scope="module")
def generated(keyed, tmp_path_factory):
    root = tmp_path_factory.mktemp("generated-client")
    (root / "openapi.json").write_text(httpx.get(f"{keyed.url}/openapi.json", timeout=30).text)
    (root / "config.yaml").write_text(CONFIG)
    tool = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run([str(tool), "generate", "--path", "openapi.json", "--output-path", "client",
                           "--config", "config.yaml"], cwd=root, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output and "Could not find reference" not in output and "Warning" not in output, output
    _import_unset(root / "client" / "clsp_search_client" / "api")
    sys.path.insert(0, str(root / "client"))
    try:
        yield importlib.import_module("clsp_search_client")
    finally:
        sys.path.remove(str(root / "client"))
        for name in [m for m in sys.modules if m == "clsp_search_client" or m.startswith("clsp_search_client.")]:
            del sys.modules[name]


def _import_unset(api: Path) -> int:
    """Work around openapi-python-client 0.29's bug #1451 (fix proposed in its pull request #1478): an
    operation whose required body comes in two media types (JSON or multipart, as search by example,
    classify and similarity do) is written with `| Unset` in its signature but no import of `Unset`,
    so its module fails to import. Adds the import; returns how many modules needed it."""
    fixed = 0
    for module in api.rglob("*.py"):
        text = module.read_text()
        if "| Unset" in text and "import Unset" not in text and "Unset," not in text:
            module.write_text(text.replace("from ...types import Response, UNSET",
                                           "from ...types import Response, UNSET, Unset", 1))
            fixed += 1
    return fixed


def _wav(searcher, clip_id: int) -> bytes:
    path = searcher.cursor().execute("SELECT source_path FROM clips WHERE id = ?", [clip_id]).fetchone()[0]
    return Path(path).read_bytes()


def test_every_kind_of_call_through_the_generated_client(generated, keyed, searcher) -> None:
    from clsp_search_client import AuthenticatedClient, Client
    from clsp_search_client.api.clips import get_clip, get_clip_audio
    from clsp_search_client.api.collection import health
    from clsp_search_client.api.export import export
    from clsp_search_client.api.search import search_audio, search_text
    from clsp_search_client.api.voices import classify, similarity
    from clsp_search_client.models import (
        AudioSearchForm,
        ClassifyForm,
        ClassifyRequest,
        ClassifyResponse,
        ClipSearchRequest,
        ErrorOut,
        ExportQuery,
        ExportSelection,
        NumberColumn,
        NumberComparison,
        NumberComparisonOp,
        PickedClip,
        SearchResponse,
        SimilarityForm,
        SimilarityRequest,
        SimilarityResponse,
        TextSearchRequest,
    )
    from clsp_search_client.types import File

    api = AuthenticatedClient(base_url=keyed.url, token=API_KEY, timeout=httpx.Timeout(60))
    anonymous = Client(base_url=keyed.url, timeout=httpx.Timeout(60))

    refused = search_text.sync(client=anonymous, body=TextSearchRequest(query="a calm voice"))
    assert isinstance(refused, ErrorOut) and refused.status == 401 and refused.error == "unauthorized"
    assert health.sync(client=anonymous).status == "ok"  # /health needs no key

    longer = NumberComparison(field=NumberColumn("duration"), op=NumberComparisonOp(">"), value=0.5)
    text = search_text.sync(client=api, body=TextSearchRequest(query="a breathy young woman whispering", top_k=5,
                                                               filter_=longer))
    assert isinstance(text, SearchResponse) and len(text.hits) == 5
    assert all(h.clip.additional_properties["duration"] > 0.5 for h in text.hits)

    like = search_audio.sync(client=api, body=ClipSearchRequest(clip_ids=[3], top_k=4))
    assert isinstance(like, SearchResponse) and 3 not in [h.id for h in like.hits] and len(like.hits) == 4

    wav = _wav(searcher, 7)
    upload = search_audio.sync(client=api, body=AudioSearchForm(
        file=File(payload=io.BytesIO(wav), file_name="q.wav", mime_type="audio/wav"), top_k=3))
    # The file of clip 7 is recognised by its content and left out, as a query by clip id would be.
    assert isinstance(upload, SearchResponse) and upload.excluded == [7] and len(upload.hits) == 3

    labels = ["whispering", "shouting"]
    by_id = classify.sync(client=api, body=ClassifyRequest(clip_ids=[1, 2], labels=labels))
    assert isinstance(by_id, ClassifyResponse) and [r.clip_id for r in by_id.results] == [1, 2]
    by_upload = classify.sync(client=api, body=ClassifyForm(
        file=File(payload=io.BytesIO(_wav(searcher, 1)), file_name="a.wav"), labels=labels))
    assert isinstance(by_upload, ClassifyResponse)
    p_id = by_id.results[0].probabilities.additional_properties["whispering"]
    assert abs(by_upload.results[0].probabilities.additional_properties["whispering"] - p_id) < 0.05

    same = similarity.sync(client=api, body=SimilarityRequest(a=4, b=4))
    assert isinstance(same, SimilarityResponse) and abs(same.similarity - 1) < 1e-5
    mixed = similarity.sync(client=api, body=SimilarityForm(
        a_id=9, b=File(payload=io.BytesIO(_wav(searcher, 9)), file_name="b.wav")))
    assert isinstance(mixed, SimilarityResponse) and mixed.similarity > 0.98

    lines = export.sync(client=api, body=ExportQuery(query="a calm older man", n=4))
    rows = [json.loads(line) for line in lines.splitlines()]
    assert len(rows) == 4 and all(r["path"] for r in rows)
    picked = [PickedClip(id=h.id, score=h.score, rank=h.rank) for h in like.hits[:2]]
    selection = export.sync(client=api, body=ExportSelection(ids=picked))
    assert [json.loads(line)["clip_id"] for line in selection.splitlines()] == [h.id for h in like.hits[:2]]

    record = get_clip.sync(client=api, clip_id=7)
    assert record.id == 7 and record.audio_url == "/clips/7/audio"
    audio = get_clip_audio.sync_detailed(client=api, clip_id=7)
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    missing = get_clip.sync(client=api, clip_id=999_999)
    assert isinstance(missing, ErrorOut) and missing.status == 404
