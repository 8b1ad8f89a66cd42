"""Every export format written from manifest rows of real files (a segment of a stereo 44.1 kHz
recording, a whole mono file, one without a transcript) and read back by its own library where one
installs (lhotse, datasets), else by its documented schema (NeMo manifests are JSON lines; LJSpeech
is `wavs/` and a pipe-separated metadata.csv)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from searchengine.export import ExportError, check_output, format_for, text_lines, write_export
from searchengine.manifest import read_source


def tone(seconds: float, sr: int, freq: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.4 * np.sin(2 * np.pi * freq * t)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


@pytest.fixture
def rows(tmp_path: Path) -> list[dict]:
    long = tmp_path / "audio" / "interview.wav"
    long.parent.mkdir()
    sf.write(long, tone(6.0, 44100, 200, channels=2), 44100)
    short = tmp_path / "audio" / "LJ001-0002.flac"
    sf.write(short, tone(1.5, 16000, 300), 16000)
    base = {"speaker": "anna", "language": "en", "global_caption": "A calm woman.", "fine_captions": ["slow"],
            "sample_rate": 44100, "channels": 2, "gender": "female"}
    return [
        {**base, "id": f"{long}#1", "path": str(long), "start": 2.0, "end": 4.5, "duration": 2.5,
         "transcript": "We met in May | or June.", "normalized_transcript": "we met in may or june",
         "score": 0.61, "rank": 1, "clip_id": 11},
        {**base, "id": "LJ001-0002", "path": str(short), "start": 0.0, "end": 1.5, "duration": 1.5,
         "transcript": "In being comparatively modern.", "normalized_transcript": None, "sample_rate": 16000,
         "channels": 1, "speaker": "lj", "score": 0.5, "rank": 2, "clip_id": 12},
        {**base, "id": str(short), "path": str(short), "start": 0.25, "end": 1.25, "duration": 1.0,
         "transcript": None, "normalized_transcript": None, "sample_rate": 16000, "channels": 1,
         "score": 0.4, "rank": 3, "clip_id": 13},
    ]


def test_nemo_lines_have_the_documented_keys(tmp_path, rows):
    out = tmp_path / "manifest.json"
    assert write_export(rows, "nemo", out) == 1  # one clip without a transcript
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"audio_filepath": rows[0]["path"], "duration": 2.5, "offset": 2.0,
                        "text": "We met in May | or June.", "normalized_text": "we met in may or june"}
    assert lines[2] == {"audio_filepath": rows[2]["path"], "duration": 1.0, "offset": 0.25, "text": ""}


@pytest.mark.parametrize("name", ["cuts.jsonl", "cuts.jsonl.gz"])
def test_lhotse_cuts_load_with_lhotse(tmp_path, rows, name):
    from lhotse import CutSet
    from lhotse.qa import validate

    write_export(rows, "lhotse", tmp_path / name)
    cuts = CutSet.from_file(tmp_path / name)
    validate(cuts, read_data=True)
    first, second, third = list(cuts)
    assert (first.start, first.duration, first.recording.sampling_rate) == (2.0, 2.5, 44100)
    assert first.recording.num_samples == 6 * 44100 and first.recording.num_channels == 2
    assert first.supervisions[0].text == "We met in May | or June." and first.supervisions[0].speaker == "anna"
    assert first.custom["clip_id"] == 11 and first.custom["global_caption"] == "A calm woman."
    audio = first.load_audio()
    assert audio.shape == (1, int(2.5 * 44100))
    np.testing.assert_allclose(audio[0], tone(6.0, 44100, 200)[2 * 44100 : int(4.5 * 44100)], atol=1e-4)
    assert second.recording.id == third.recording.id and third.supervisions[0].text is None
    again = read_source(tmp_path / name).items  # and this package indexes what it exports
    assert [(i.start, i.end, i.transcript) for i in again] == [(2.0, 4.5, "We met in May | or June."),
                                                             (0.0, 1.5, "In being comparatively modern."),
                                                             (0.25, 1.25, None)]


def _check_hf(ds, rows) -> None:
    import datasets

    assert isinstance(ds.features["audio"], datasets.Audio)
    assert ds["text"] == [r["transcript"] for r in rows] and ds["clip_id"] == [11, 12, 13]
    assert ds["source_path"] == [r["path"] for r in rows] and ds["fine_captions"][0] == ["slow"]
    raw = ds.cast_column("audio", datasets.Audio(decode=False))
    for row, audio in zip(rows, raw["audio"], strict=True):
        wave, sr = sf.read(io.BytesIO(audio["bytes"]))
        assert sr == 16000 and wave.ndim == 1 and len(wave) == pytest.approx(row["duration"] * 16000, abs=1)


def test_hf_folder_and_parquet_load_with_datasets(tmp_path, rows):
    import datasets

    write_export(rows, "hf", tmp_path / "set", sample_rate=16000)
    _check_hf(datasets.load_from_disk(str(tmp_path / "set")), rows)
    write_export(rows, "hf", tmp_path / "set.parquet", sample_rate=16000)
    _check_hf(datasets.Dataset.from_parquet(str(tmp_path / "set.parquet"), cache_dir=str(tmp_path / "cache")), rows)
    assert datasets.load_from_disk(str(tmp_path / "set")).features["audio"].sampling_rate == 16000
    again = read_source(tmp_path / "set").items  # and this package indexes what it exports
    assert [i.transcript for i in again] == [r["transcript"] for r in rows] and all(i.embedded for i in again)
    assert [(i.start, i.end, i.metadata["source_start"]) for i in again] == [(None, None, 2.0), (None, None, 0.0),
                                                                            (None, None, 0.25)]


def test_hf_keeps_each_files_rate_unless_asked(tmp_path, rows):
    import pyarrow.parquet as pq

    write_export(rows[:2], "hf", tmp_path / "own.parquet")
    rates = [sf.info(io.BytesIO(a["bytes"])).samplerate for a in pq.read_table(tmp_path / "own.parquet")["audio"].to_pylist()]
    assert rates == [44100, 16000]


def test_ljspeech_layout(tmp_path, rows):
    out = tmp_path / "lj"
    write_export(rows, "ljspeech", out)
    with open(out / "metadata.csv", newline="", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    fields = [line.split("|") for line in lines]
    assert all(len(f) == 3 for f in fields)
    assert fields[0] == ["interview_1", "We met in May or June.", "we met in may or june"]
    assert fields[1] == ["LJ001-0002-12", "In being comparatively modern.", "In being comparatively modern."]
    assert fields[2] == ["LJ001-0002-13", "", ""]
    for (name, *_), row in zip(fields, rows, strict=True):
        info = sf.info(out / "wavs" / f"{name}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert info.frames == pytest.approx(row["duration"] * 22050, abs=1)
    assert sorted(p.name for p in out.iterdir()) == ["clips.jsonl", "metadata.csv", "wavs"]
    assert [json.loads(x)["clip_id"] for x in (out / "clips.jsonl").read_text().splitlines()] == [11, 12, 13]
    write_export(rows, "ljspeech", tmp_path / "lj16", sample_rate=16000)
    assert sf.info(tmp_path / "lj16" / "wavs" / "interview_1.wav").samplerate == 16000


def test_outputs_are_never_half_written(tmp_path, rows):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        check_output(tmp_path / "taken", "ljspeech")
    with pytest.raises(ExportError, match="not an empty folder"):
        write_export(rows, "hf", tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
    gone = [*rows, {**rows[1], "path": str(tmp_path / "moved.wav"), "clip_id": 14}]
    with pytest.raises(ExportError, match="clip 14: cannot read its audio"):
        write_export(gone, "ljspeech", tmp_path / "lj")
    with pytest.raises(ExportError, match="clip 14"):
        write_export(gone, "hf", tmp_path / "x.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "taken"]  # no output, no staging leftovers


def test_formats_by_name_and_csv_round_trip(tmp_path, rows):
    assert [format_for(Path(n), None) for n in ("a.csv", "a.parquet", "a.json", "a")] == ["csv", "hf", "jsonl", "jsonl"]
    with pytest.raises(ExportError, match="choose one of jsonl, csv, nemo, lhotse, hf, ljspeech"):
        format_for(Path("a.json"), "kaldi")
    table = list(csv.DictReader(io.StringIO("".join(text_lines(rows, "csv")))))
    assert table[0]["transcript"] == "We met in May | or June." and json.loads(table[0]["fine_captions"]) == ["slow"]
