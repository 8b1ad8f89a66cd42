"""POST /export in the trainer formats over the real server, each body read back as its trainer
would: NeMo lines by their documented keys, lhotse cuts by lhotse, the parquet by pyarrow and
datasets, the LJSpeech zip by its metadata.csv and wavs. The generated corpus's manifest gives each
clip the sentence it speaks (`text`), indexed as its transcript: that is the text every format carries."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
import pytest
import soundfile as sf

QUERY = "a calm older man"


def _export(client: httpx.Client, **body) -> httpx.Response:
    r = client.post("/export", json=body)
    assert r.status_code == 200, r.text
    return r


def test_nemo_and_lhotse_lines_of_a_query(client: httpx.Client) -> None:
    hits = client.post("/search/text", json={"query": QUERY, "top_k": 4}).json()["hits"]
    r = _export(client, query=QUERY, n=4, format="nemo")
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="manifest.json"' in r.headers["content-disposition"]
    assert r.headers["x-result-count"] == "4" and r.headers["x-untranscribed-count"] == "0"
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [set(line) for line in lines] == [{"audio_filepath", "duration", "offset", "text"}] * 4
    assert [line["audio_filepath"] for line in lines] == [h["clip"]["source_path"] for h in hits]
    assert [line["text"] for line in lines] == [h["clip"]["transcript"] for h in hits]
    assert all(line["text"] and line["duration"] > 0 and line["offset"] >= 0 for line in lines)

    from lhotse import CutSet

    r = _export(client, ids=[h["id"] for h in hits[:3]], format="lhotse")
    cuts = list(CutSet.from_dicts(json.loads(line) for line in r.text.splitlines()))
    assert [c.custom["clip_id"] for c in cuts] == [h["id"] for h in hits[:3]]
    assert [c.recording.sources[0].source for c in cuts] == [h["clip"]["source_path"] for h in hits[:3]]
    assert [c.supervisions[0].text for c in cuts] == [h["clip"]["transcript"] for h in hits[:3]]
    audio = cuts[0].load_audio()
    assert audio.shape[1] == pytest.approx(cuts[0].duration * cuts[0].sampling_rate, abs=1)


def test_hf_parquet_of_picked_clips(client: httpx.Client, tmp_path) -> None:
    import datasets
    import pyarrow.parquet as pq

    picked = [{"id": 5, "score": 0.5, "rank": 1}, {"id": 2, "score": 0.25, "rank": 2}]
    r = _export(client, ids=picked, format="hf", sample_rate=16000)
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert 'filename="export.parquet"' in r.headers["content-disposition"]
    assert int(r.headers["content-length"]) == len(r.content)
    table = pq.read_table(io.BytesIO(r.content))
    assert table["clip_id"].to_pylist() == [5, 2] and table["rank"].to_pylist() == [1, 2]
    assert all(table["text"].to_pylist()) and r.headers["x-untranscribed-count"] == "0"
    (tmp_path / "x.parquet").write_bytes(r.content)
    ds = datasets.Dataset.from_parquet(str(tmp_path / "x.parquet"), cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].sampling_rate == 16000
    raw = ds.cast_column("audio", datasets.Audio(decode=False))
    for audio, duration in zip(raw["audio"], ds["duration"], strict=True):
        wave, sr = sf.read(io.BytesIO(audio["bytes"]))
        assert sr == 16000 and wave.ndim == 1 and len(wave) == pytest.approx(duration * 16000, abs=1)


def test_ljspeech_zip_of_a_query(client: httpx.Client) -> None:
    r = _export(client, query=QUERY, n=3, format="ljspeech", sample_rate=8000)
    assert r.headers["content-type"] == "application/zip" and r.headers["x-result-count"] == "3"
    assert "x-curation-summary" in r.headers
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        lines = z.read("metadata.csv").decode().splitlines()
        names = [line.split("|")[0] for line in lines]
        assert len(names) == 3 and all(line.count("|") == 2 for line in lines)
        assert sorted(n for n in z.namelist() if n.startswith("wavs/")) == sorted(f"wavs/{n}.wav" for n in names)
        rows = [json.loads(x) for x in z.read("clips.jsonl").decode().splitlines()]
        assert [line.split("|")[1] for line in lines] == [row["transcript"] for row in rows]
        for name, row in zip(names, rows, strict=True):
            info = sf.info(io.BytesIO(z.read(f"wavs/{name}.wav")))
            assert (info.samplerate, info.channels) == (8000, 1)
            assert info.frames == pytest.approx(row["duration"] * 8000, abs=1)


def test_audio_formats_refuse_what_they_cannot_export(client: httpx.Client, restricted) -> None:
    for bad in ({"ids": [1], "format": "ljspeech", "sample_rate": 4000}, {"ids": [1], "format": "kaldi"},
                {"query": QUERY, "format": "hf", "sample_rate": "16000"}):
        assert client.post("/export", json=bad).status_code == 422, bad
    assert client.post("/export", json={"ids": [1, 999999], "format": "hf"}).status_code == 404
    server, _ = restricted  # a server whose audio roots hold none of the corpus
    r = httpx.post(f"{server.url}/export", json={"ids": [1, 2], "format": "ljspeech"}, timeout=60)
    assert r.status_code == 403 and r.json()["detail"] == {"ids": [1, 2]}
    lines = httpx.post(f"{server.url}/export", json={"ids": [1, 2], "format": "nemo"}, timeout=60)
    assert lines.status_code == 200 and len(lines.text.splitlines()) == 2  # paths only: nothing is read
