"""`searchengine.client.Client` against the real key-protected server: every call, and the errors."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from searchengine.client import ApiError, Client, Hit

from .conftest import API_KEY


def _wav(searcher, clip_id: int) -> Path:
    return Path(searcher.cursor().execute("SELECT source_path FROM clips WHERE id = ?", [clip_id]).fetchone()[0])


def test_every_call(keyed, searcher, monkeypatch) -> None:
    monkeypatch.delenv("CLSP_SEARCH_API_KEY", raising=False)
    with Client(keyed.url) as anonymous:
        assert anonymous.health()["status"] == "ok"
        with pytest.raises(ApiError) as refused:
            anonymous.search_text("a calm voice")
        assert refused.value.status == 401 and refused.value.error == "unauthorized"
    monkeypatch.setenv("CLSP_SEARCH_API_KEY", API_KEY)  # the key from the environment
    with Client(keyed.url) as api:
        assert api.collection()["counts"]["clips"] == 40
        page = api.search_text("a breathy young woman whispering", top_k=5,
                               filter={"field": "duration", "op": ">", "value": 0.5})
        assert len(page.hits) == 5 and all(isinstance(h, Hit) and h.clip["duration"] > 0.5 for h in page.hits)
        assert [h.rank for h in page.hits] == [1, 2, 3, 4, 5] and page.hits[0].caption
        like = api.search_clips([3], top_k=4)
        assert 3 not in [h.id for h in like.hits] and like.excluded == [3]
        recording = _wav(searcher, 7)
        by_file = api.search_audio(recording, top_k=3, filter={"field": "duration", "op": ">", "value": 0})
        by_bytes = api.search_audio(recording.read_bytes(), top_k=3)
        assert by_file.excluded == by_bytes.excluded == [7] and [h.id for h in by_file.hits] == [h.id for h in by_bytes.hits]
        assert api.clip(7)["id"] == 7 and api.clip_audio(7)[:4] == b"RIFF"
        labels = ["whispering", "shouting"]
        (by_id,) = api.classify(labels, clip_ids=[1])
        with open(_wav(searcher, 1), "rb") as f:
            (by_upload,) = api.classify(labels, audio=f)
        assert by_id.clip_id == 1 and by_upload.clip_id is None
        assert abs(by_id.probabilities["whispering"] - by_upload.probabilities["whispering"]) < 0.05
        assert api.similarity(4, 4).similarity == pytest.approx(1.0, abs=1e-5)
        assert api.similarity(9, _wav(searcher, 9)).similarity > 0.98
        rows = [json.loads(line) for line in api.export("a calm older man", n=3, max_per_speaker=2).splitlines()]
        assert len(rows) == 3
        picked = api.export_selection([like.hits[1], 2], format="csv").splitlines()
        assert len(picked) == 3 and picked[0].startswith("id,path")
        archive = api.export_selection([2, 5], format="ljspeech")  # bytes: decoded as text, a zip is corrupt
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            assert "metadata.csv" in z.namelist() and sum(n.endswith(".wav") for n in z.namelist()) == 2
        table = pq.read_table(io.BytesIO(api.export("a calm older man", n=2, format="hf")))
        assert table.num_rows == 2 and "audio" in table.column_names
        with pytest.raises(ApiError) as missing:
            api.clip(999_999)
        assert missing.value.status == 404 and "999999" in missing.value.message
        with pytest.raises(ValueError):
            api.classify(labels)
