"""Dataset sources read by searchengine.sources, with inputs written by the formats' own libraries
(datasets, lhotse, webdataset): items, keys, ranges and transcripts, embedded audio written out as
content-named files, and the refusals that say what to do."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from searchengine.audio import file_hash
from searchengine.manifest import ManifestError, read_source
from searchengine.sources.extract import extract_embedded

SR = 22050


def tone(seconds: float, freq: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(int(freq))
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def audio_bytes(seconds: float, freq: float, fmt: str = "FLAC") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, freq), SR, format=fmt)
    return buf.getvalue()


def hf_dataset(rows: list[dict]):
    """A datasets.Dataset with an Audio column, built without an audio codec (as `save_to_disk` stores one)."""
    import datasets

    features = datasets.Features({
        "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
        "id": datasets.Value("string"), "text": datasets.Value("string"),
        "normalized_text": datasets.Value("string"), "speaker_id": datasets.Value("int64"),
        "path": datasets.Value("string"),
    })
    ds = datasets.Dataset.from_list(rows, features=features)
    return ds.cast_column("audio", datasets.Audio(decode=False))


@pytest.fixture
def hf_rows(tmp_path: Path) -> list[dict]:
    outside = tmp_path / "outside.wav"
    sf.write(outside, tone(1.0, 330), SR)
    return [
        {"audio": {"bytes": audio_bytes(1.0, 220), "path": "LJ001-0001.flac"}, "id": "u1",
         "text": "Printing, in the only sense.", "normalized_text": "printing in the only sense",
         "speaker_id": 7, "path": "clips/LJ001-0001.flac"},
        {"audio": {"bytes": audio_bytes(1.2, 440, "WAV"), "path": None}, "id": "u2", "text": "Dr. Smith",
         "normalized_text": "doctor smith", "speaker_id": 8, "path": None},
        {"audio": {"bytes": None, "path": str(outside)}, "id": "u3", "text": None, "normalized_text": None,
         "speaker_id": 7, "path": None},
    ]


def test_a_saved_dataset_keeps_transcripts_and_locates_embedded_audio(tmp_path, hf_rows):
    hf_dataset(hf_rows[:2]).save_to_disk(str(tmp_path / "ds"))
    source = read_source(tmp_path / "ds")
    one, two = source.items
    assert (one.key, two.key) == ("u1", "u2")
    assert one.transcript == "Printing, in the only sense." and one.normalized_transcript == "printing in the only sense"
    assert one.metadata["speaker_id"] == 7 and one.metadata["dataset_path"] == "clips/LJ001-0001.flac"
    assert "text" not in one.metadata and "normalized_text" not in one.metadata
    assert one.embedded is not None and one.embedded.locator == 0 and one.embedded.name == "LJ001-0001.flac"

    audio = tmp_path / "collection" / "audio"
    out = extract_embedded(source, audio)
    first, second = (Path(i.path) for i in out.items)
    assert first.suffix == ".flac" and second.suffix == ".wav"  # by the name given, else by the bytes
    assert first.is_relative_to(audio) and first.stem == file_hash(first)  # named by content
    assert sf.read(first)[0].shape[0] == SR and all(i.embedded is None for i in out.items)
    mtime = first.stat().st_mtime_ns
    again = extract_embedded(read_source(tmp_path / "ds"), audio)  # a re-run writes nothing
    assert [i.path for i in again.items] == [i.path for i in out.items] and first.stat().st_mtime_ns == mtime
    assert not [p for p in audio.rglob("*") if p.name.endswith(".tmp")]


def test_a_dataset_dict_parquet_and_arrow_files(tmp_path, hf_rows):
    import datasets

    ds = hf_dataset(hf_rows)
    datasets.DatasetDict({"train": ds.select([0, 2]), "test": ds.select([1])}).save_to_disk(str(tmp_path / "dd"))
    source = read_source(tmp_path / "dd")
    assert [(i.key, i.metadata["split"]) for i in source.items] == [("u1", "train"), ("u3", "train"), ("u2", "test")]
    # save_to_disk embeds a row's file, so u3 holds bytes too; a parquet can hold a bare path
    ds.remove_columns(["id"]).to_parquet(str(tmp_path / "d.parquet"))
    items = read_source(tmp_path / "d.parquet").items
    parquet = (tmp_path / "d.parquet").resolve()
    assert [i.key for i in items] == [f"{parquet}#0", f"{parquet}#1", f"{parquet}#2"]  # no id: their place
    assert items[2].embedded is None and items[2].path == str(tmp_path / "outside.wav") and items[2].transcript is None
    assert items[1].transcript == "Dr. Smith" and items[1].embedded.kind == "parquet"
    arrow = next((tmp_path / "dd" / "test").glob("*.arrow"))
    assert [i.transcript for i in read_source(arrow).items] == ["Dr. Smith"]
    out = extract_embedded(read_source(tmp_path / "d.parquet"), tmp_path / "audio")
    assert [sf.info(i.path).duration for i in out.items] == pytest.approx([1.0, 1.2, 1.0], abs=1e-3)


def test_a_parquet_manifest_with_a_path_column_is_still_a_manifest(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    sf.write(tmp_path / "a.wav", tone(1.0, 200), SR)
    pq.write_table(pa.table({"path": ["a.wav"], "transcript": ["hello"], "text": ["kept as metadata"]}),
                   tmp_path / "m.parquet")
    (item,) = read_source(tmp_path / "m.parquet").items
    assert item.path == str(tmp_path / "a.wav") and item.embedded is None
    assert item.transcript == "hello" and item.metadata == {"text": "kept as metadata"}


def test_lhotse_recordings_supervisions_and_cuts(tmp_path):
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    (tmp_path / "wav").mkdir()
    sf.write(tmp_path / "wav" / "r1.wav", tone(3.0, 200), SR)
    sf.write(tmp_path / "wav" / "r2.wav", tone(2.0, 300), SR)
    recordings = RecordingSet.from_recordings(
        Recording.from_file(tmp_path / "wav" / f"{r}.wav", recording_id=r) for r in ("r1", "r2"))
    sups = SupervisionSet.from_segments([
        SupervisionSegment("s1", "r1", start=0.5, duration=1.0, text="first words", speaker="A", language="en"),
        SupervisionSegment("s2", "r1", start=1.6, duration=1.0, text="then more", speaker="A", language="en"),
        SupervisionSegment("s3", "r2", start=0.0, duration=2.0, text="other voice", speaker="B"),
    ])
    recordings.to_file(tmp_path / "corpus_recordings_dev.jsonl.gz")
    sups.to_file(tmp_path / "corpus_supervisions_dev.jsonl.gz")
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=sups)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")

    recs = read_source(tmp_path / "corpus_recordings_dev.jsonl.gz").items
    assert [(i.key, Path(i.path).name, i.start, i.end) for i in recs] == [("r1", "r1.wav", None, None),
                                                                          ("r2", "r2.wav", None, None)]
    by_sup = read_source(tmp_path / "corpus_supervisions_dev.jsonl.gz").items
    assert [(i.key, i.start, i.end, i.transcript, i.speaker) for i in by_sup] == [
        ("s1", 0.5, 1.5, "first words", "A"), ("s2", 1.6, 2.6, "then more", "A"), ("s3", 0.0, 2.0, "other voice", "B")]
    whole = read_source(tmp_path / "cuts.jsonl.gz").items
    assert [(Path(i.path).name, i.transcript, i.speaker, i.language) for i in whole] == [
        ("r1.wav", "first words then more", "A", "en"), ("r2.wav", "other voice", "B", None)]
    assert (whole[0].start, whole[0].end) == (0.0, 3.0)


def test_lhotse_sources_nothing_local_reads_are_refused(tmp_path):
    line = {"id": "r", "sources": [{"type": "url", "channels": [0], "source": "https://example.org/a.wav"}],
            "sampling_rate": 16000, "num_samples": 16000, "duration": 1.0, "channel_ids": [0]}
    with gzip.open(tmp_path / "recordings.jsonl.gz", "wt") as f:
        f.write(json.dumps(line) + "\n")
    with pytest.raises(ManifestError, match="'url' source; only 'file' sources"):
        read_source(tmp_path / "recordings.jsonl.gz")
    sup = {"id": "s", "recording_id": "r", "start": 0.0, "duration": 1.0, "channel": 0, "text": "x"}
    (tmp_path / "sups.jsonl").write_text(json.dumps(sup) + "\n")
    with pytest.raises(ManifestError, match="needs its recordings"):
        read_source(tmp_path / "sups.jsonl")


def test_webdataset_shards_a_pattern_and_samples_without_audio(tmp_path):
    import webdataset as wds

    (tmp_path / "shards").mkdir()
    for shard, freqs in ((0, (200, 250)), (1, (300,))):
        with wds.TarWriter(str(tmp_path / "shards" / f"part-{shard:03d}.tar")) as sink:
            for n, freq in enumerate(freqs):
                sample = {"__key__": f"s{shard}-{n}", "flac": audio_bytes(1.0, freq),
                          "json": {"speaker": f"spk{freq}", "global_caption": "A low voice.", "path": "orig.flac"}}
                if freq != 250:
                    sample["txt"] = f"words at {freq}"
                else:
                    sample["json"]["text"] = "from the json"
                sink.write(sample)
            if shard == 1:
                sink.write({"__key__": "notes", "txt": "no audio here"})
    shard0 = (tmp_path / "shards" / "part-000.tar").resolve()
    pattern = read_source(str(tmp_path / "shards" / "part-{000..001}.tar"))
    folder = read_source(tmp_path / "shards")
    for source in (pattern, folder):
        assert [i.key for i in source.items] == [f"{shard0}#s0-0", f"{shard0}#s0-1",
                                                 f"{(tmp_path / 'shards' / 'part-001.tar').resolve()}#s1-0"]
        assert [i.transcript for i in source.items] == ["words at 200", "from the json", "words at 300"]
        assert source.items[0].speaker == "spk200" and source.items[0].global_caption == "A low voice."
        assert source.items[0].metadata["dataset_path"] == "orig.flac"
        assert [why for _, why in source.skipped] == ["no audio member (fields: txt)"]
    out = extract_embedded(pattern, tmp_path / "audio")
    assert [round(sf.info(i.path).duration, 3) for i in out.items] == [1.0, 1.0, 1.0]
    assert len({i.path for i in out.items}) == 3 and all(Path(i.path).suffix == ".flac" for i in out.items)
    with pytest.raises(ManifestError, match="1 of 3 shards do not exist"):
        read_source(str(tmp_path / "shards" / "part-{000..002}.tar"))


def test_a_dataset_row_without_audio_refuses_the_dataset(tmp_path, hf_rows):
    rows = [hf_rows[0], dict(hf_rows[1], audio={"bytes": None, "path": None})]
    hf_dataset(rows).to_parquet(str(tmp_path / "broken.parquet"))
    with pytest.raises(ManifestError, match="row 2 has no audio"):
        read_source(tmp_path / "broken.parquet")
