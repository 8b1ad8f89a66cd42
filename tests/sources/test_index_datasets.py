"""Indexing dataset sources end to end (real pipeline, bundled model): a saved Hugging Face dataset
whose audio is bytes lands in the collection's audio folder with its transcripts, a re-run finds
everything unchanged, and lhotse cuts index their spans."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from searchengine.store import Collection

SR = 22050


def voice_like(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A harmonic tone with a wobbling pitch and some noise: enough for the decoder's quality gates."""
    t = np.arange(int(seconds * SR)) / SR
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    return (x + 0.01 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


def flac(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="FLAC")
    return buf.getvalue()


def test_index_a_saved_dataset_and_lhotse_cuts(tmp_path, encoder, model_spec):
    import datasets
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    from indexer.pipeline import run_index

    features = datasets.Features({"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                                  "text": datasets.Value("string"), "speaker": datasets.Value("string")})
    rows = [{"audio": {"bytes": flac(voice_like(1.5, 110 + 40 * i, i)), "path": f"utt{i}.flac"},
             "text": f"utterance number {i}", "speaker": f"spk{i % 2}"} for i in range(3)]
    ds = datasets.Dataset.from_list(rows, features=features).cast_column("audio", datasets.Audio(decode=False))
    ds.save_to_disk(str(tmp_path / "ds"))
    collection = tmp_path / "collection"

    def index(source) -> object:
        return run_index(source, collection, encoder, workers=0, progress=False, attributes=False,
                         model_spec=model_spec, args={"model": model_spec})

    first = index(tmp_path / "ds")
    assert (first.files_added, first.files_failed) == (3, 0)
    again = index(tmp_path / "ds")
    assert (again.files_added, again.files_unchanged, again.clips_added) == (0, 3, 0)

    sf.write(tmp_path / "long.wav", voice_like(4.0, 180, 9), SR)
    recordings = RecordingSet.from_recordings([Recording.from_file(tmp_path / "long.wav", recording_id="long")])
    sups = SupervisionSet.from_segments([SupervisionSegment("a", "long", 0.5, 1.0, text="the first part"),
                                         SupervisionSegment("b", "long", 2.0, 1.5, text="the second part")])
    CutSet.from_manifests(recordings=recordings, supervisions=sups).trim_to_supervisions().to_file(
        tmp_path / "cuts.jsonl.gz")
    cuts = index(tmp_path / "cuts.jsonl.gz")
    assert (cuts.files_added, cuts.files_failed) == (2, 0)

    coll = Collection.open(collection, read_only=True)
    try:
        got = coll.sql("SELECT source_key, source_path, start, \"end\", transcript, speaker FROM clips "
                       "ORDER BY source_key").fetchall()
    finally:
        coll.close()
    dataset = [r for r in got if r[0].startswith(str((tmp_path / "ds").resolve()))]
    assert [r[4] for r in dataset] == [f"utterance number {i}" for i in range(3)]
    assert [r[5] for r in dataset] == ["spk0", "spk1", "spk0"]
    audio = collection.resolve() / "audio"
    assert all(Path(r[1]).is_relative_to(audio) and Path(r[1]).suffix == ".flac" for r in dataset)
    assert len(list(audio.rglob("*.flac"))) == 3
    spans = [(r[2], r[3], r[4]) for r in got if r[0] in ("a", "b")]
    assert spans == [(0.5, 1.5, "the first part"), (2.0, 3.5, "the second part")]
