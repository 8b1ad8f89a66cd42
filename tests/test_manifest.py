"""The one source reader (searchengine.manifest) and the training/evaluation view built on it
(searchengine.model.data): every manifest format, segments, and the rows training skips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from searchengine.manifest import ManifestError, read_rows, read_source
from searchengine.model.data import Clip, manifest_path, read_manifest

SR = 22050  # not 16 kHz, so loading also resamples


def _tone(path: Path, seconds: float, sr: int = SR, channels: int = 1) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(path, np.stack([x] * channels, axis=1) if channels > 1 else x, sr)
    return path


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    (tmp_path / "audio").mkdir()
    _tone(tmp_path / "audio" / "a.wav", 3.0)
    _tone(tmp_path / "audio" / "b.wav", 2.0, channels=2)
    return tmp_path


def test_csv_manifest_is_read_by_read_manifest(audio_dir):
    (audio_dir / "m.csv").write_text(
        "id,path,global_caption,fine_captions,split,gender,attributes\n"
        'a1,audio/a.wav,A calm man.,slow speech|low pitch,train,male,"{""accent"": ""Scottish""}"\n'
        'b1,audio/b.wav,A bright woman.,"[""fast speech"", ""high pitch""]",test,female,\n'
        "c1,audio/b.wav,,only fine,train,female,\n"  # no global caption: skipped
    )
    clips = read_manifest(audio_dir / "m.csv")
    assert [c.id for c in clips] == ["a1", "b1"]
    a, b = clips
    assert a.path == (audio_dir / "audio" / "a.wav").resolve() and a.path.is_absolute()
    assert a.fine_captions == ["slow speech", "low pitch"] and b.fine_captions == ["fast speech", "high pitch"]
    assert (a.split, b.split) == ("train", "test")
    assert a.attribute("gender") == "male" and a.attribute("accent") == "Scottish"
    assert (a.start, a.end) == (None, None)
    assert len(a.load_audio()) == pytest.approx(3.0 * 16000, abs=2)
    assert b.load_audio().ndim == 1  # stereo mixed down


def test_parquet_manifest_is_read_by_read_manifest(audio_dir):
    table = pa.table({
        "id": ["a1", "b1", "b2"],
        "path": ["audio/a.wav", "audio/b.wav", str((audio_dir / "audio" / "b.wav").resolve())],
        "global_caption": ["A calm man.", "A bright woman.", "A bright woman, again."],
        "fine_captions": [["slow speech"], ["fast speech", "high pitch"], []],  # b2 has none: skipped
        "start": [0.5, None, None],
        "end": [2.0, None, None],
        "heldout_phrasing": [False, True, False],
        "attributes": [{"gender": "male", "age": "adult"}, {"gender": "female", "age": "young"},
                       {"gender": "female", "age": "young"}],
    })
    pq.write_table(table, audio_dir / "m.parquet")
    clips = read_manifest(audio_dir / "m.parquet")
    assert [c.id for c in clips] == ["a1", "b1"]
    a, b = clips
    assert a.fine_captions == ["slow speech"] and b.heldout_phrasing and not a.heldout_phrasing
    assert a.attribute("gender") == "male" and b.attribute("age") == "young"
    assert (a.start, a.end) == (0.5, 2.0) and (b.start, b.end) == (None, None)
    assert len(a.load_audio()) == pytest.approx(1.5 * 16000, abs=2)


def test_jsonl_segment_loads_only_that_segment(audio_dir):
    lines = [
        {"id": "seg", "path": "audio/a.wav", "start": 1.0, "end": 2.25, "global_caption": "A calm man.",
         "fine_captions": ["slow speech"], "attributes": {"gender": "male"}},
        {"id": "whole", "path": "audio/a.wav", "global_caption": "A calm man.", "fine_captions": ["slow"]},
    ]
    (audio_dir / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    seg, whole = read_manifest(audio_dir)  # a corpus directory means its manifest.jsonl
    assert isinstance(seg, Clip) and (seg.start, seg.end) == (1.0, 2.25)
    audio = seg.load_audio()
    assert audio.dtype == np.float32 and len(audio) == pytest.approx(1.25 * 16000, abs=2)
    assert len(whole.load_audio()) == pytest.approx(3.0 * 16000, abs=2)
    assert seg.record == lines[0]  # the record as written, nested attributes kept


def test_jsonl_records_are_kept_as_written_and_numbered_by_line(audio_dir):
    (audio_dir / "m.jsonl").write_text(
        json.dumps({"path": "audio/a.wav", "global_caption": "g", "fine_captions": ["f"], "n": 3}) + "\n\n"
        + json.dumps({"path": "audio/b.wav", "global_caption": "g", "fine_captions": "one fine", "n": 2.5}) + "\n"
        + json.dumps({"path": "audio/b.wav", "fine_captions": ["no global"]}) + "\n"
    )
    clips = read_manifest(audio_dir / "m.jsonl")
    assert [c.id for c in clips] == ["1", "3"]  # no id: the line number, blank lines counted
    assert clips[0].record["n"] == 3 and isinstance(clips[0].record["n"], int)  # not widened to 2.5's type
    assert "n" in clips[1].record and "id" not in clips[1].record
    assert clips[1].fine_captions == ["one fine"]


def test_manifest_path_and_missing_manifest(tmp_path):
    with pytest.raises(FileNotFoundError):
        manifest_path(tmp_path)
    (tmp_path / "manifest.jsonl").write_text("")
    assert manifest_path(tmp_path) == tmp_path / "manifest.jsonl"
    assert read_manifest(tmp_path) == []


@pytest.mark.parametrize(
    "line,column",
    [
        ({"global_caption": "g", "fine_captions": ["f"]}, "path"),
        ({"path": "a.wav", "start": "soon"}, "start"),
        ({"path": "a.wav", "fine_captions": 3}, "fine_captions"),
    ],
)
def test_bad_rows_refuse_the_manifest_naming_the_column(tmp_path, line, column):
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "ok.wav"}) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(ManifestError, match=column):
        read_rows(tmp_path / "m.jsonl")


def test_indexer_and_training_read_the_same_rows_alike(audio_dir):
    """One interpretation of path, segment and captions for both views of a manifest."""
    (audio_dir / "m.csv").write_text(
        "path,start,end,global_caption,fine_captions\n"
        "audio/a.wav,0.5,1.5,A calm man.,slow|low\n"
        "audio/b.wav,,,A bright woman.,fast\n"
    )
    items = read_source(audio_dir / "m.csv").items
    clips = read_manifest(audio_dir / "m.csv")
    assert [(i.path, i.start, i.end, i.global_caption, list(i.fine_captions)) for i in items] == [
        (str(c.path), c.start, c.end, c.global_caption, c.fine_captions) for c in clips
    ]
    assert items[0].key.endswith("a.wav#0.5-1.5")
