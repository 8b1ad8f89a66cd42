"""The generator as a whole: manifest schema, determinism, resume, splits and the CLI's errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from searchengine.corpus.generate import CorpusError, assign_voice_splits, generate
from searchengine.corpus.voices import available_voices, select_voices

BINS = {
    "pitch_level": {"very low", "low", "medium", "high", "very high", None},
    "pitch_variation": {"monotone", "moderate", "expressive", None},
    "speaking_rate": {"very slow", "slow", "medium", "fast", "very fast"},
    "loudness": {"quiet", "normal", "loud"},
    "noise": {"clean", "slightly noisy", "noisy", "very noisy"},
    "noise_color": {"white", "pink", "brown", None},
    "reverb": {"close", "slightly distant", "distant", "very distant"},
    "channel": {"studio", "telephone"},
}
NUMERIC = ("pitch_semitones", "pitch_spread_semitones", "rate_factor", "loudness_dbfs", "snr_db", "reverberance")
CLI = [sys.executable, "-m", "cli"]


def test_manifest_schema(small_corpus, small_manifest):
    import soundfile as sf

    assert len(small_manifest) == 60
    for rec in small_manifest:
        for key in ("id", "path", "duration", "sample_rate", "voice", "engine", "gender", "accent",
                    "attributes", "global_caption", "fine_captions", "split", "heldout_phrasing", "text"):
            assert key in rec, key
        info = sf.info(str(small_corpus / rec["path"]))
        assert info.samplerate == rec["sample_rate"] == 16000 and info.channels == 1
        assert abs(info.frames / 16000 - rec["duration"]) < 1e-3
        assert rec["split"] in {"train", "val", "test"}
        assert len(rec["fine_captions"]) >= 4 and all(rec["fine_captions"]) and rec["global_caption"]
        a = rec["attributes"]
        for key, allowed in BINS.items():
            assert a[key] in allowed, (key, a[key])
        for key in NUMERIC:
            assert key in a
        assert (a["snr_db"] is None) == (a["noise"] == "clean")
        assert isinstance(a["whisper"], bool)


def test_bins_are_all_represented(small_manifest):
    """Every bin of the sampled factors turns up, not only the extremes."""
    for key in ("speaking_rate", "loudness", "noise", "reverb", "channel", "pitch_level"):
        seen = {r["attributes"][key] for r in small_manifest}
        assert BINS[key] - {None} <= seen, (key, seen)


def test_split_by_voice_keeps_voices_apart(small_manifest):
    splits: dict[str, set[str]] = {}
    for rec in small_manifest:
        splits.setdefault(rec["voice"], set()).add(rec["split"])
    assert all(len(s) == 1 for s in splits.values())
    assignment = assign_voice_splits(available_voices(), seed=11)
    test_genders = {v.gender for v in available_voices() if assignment[v.id] == "test"}
    assert test_genders == {"male", "female"}
    shares = {s: sum(1 for x in assignment.values() if x == s) / len(assignment) for s in ("train", "val", "test")}
    assert 0.7 < shares["train"] < 0.9


def test_some_phrasings_are_held_out(small_manifest):
    share = sum(r["heldout_phrasing"] for r in small_manifest) / len(small_manifest)
    assert 0.03 < share < 0.35


def test_same_seed_gives_identical_corpus(tmp_path):
    voices = select_voices(["espeak-ng:en-gb", "flite"])
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, n=12, seed=5, voices=voices, workers=2)
    generate(b, n=12, seed=5, voices=voices, workers=1)
    assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()
    for wav in sorted((a / "audio").glob("*.wav")):
        assert wav.read_bytes() == (b / "audio" / wav.name).read_bytes(), wav.name
    generate(c := tmp_path / "c", n=12, seed=6, voices=voices, workers=2)
    assert (c / "manifest.jsonl").read_bytes() != (a / "manifest.jsonl").read_bytes()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_default_workers_are_the_cores_this_process_may_use(tmp_path):
    """`--workers 0` sizes the pool like the indexer: the affinity set under a cgroup CPU quota, not the
    host's core count (a container limited to one core renders in one process)."""
    from searchengine.cores import available_cores

    voices = select_voices(["espeak-ng:en-us"])
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert generate(tmp_path / "one", n=2, seed=1, voices=voices, workers=0)["workers"] == 1
    finally:
        os.sched_setaffinity(0, allowed)
    assert generate(tmp_path / "all", n=2, seed=1, voices=voices, workers=0)["workers"] == available_cores()
    assert generate(tmp_path / "three", n=2, seed=1, voices=voices, workers=3)["workers"] == 3


def test_resume_renders_only_missing_clips(tmp_path):
    voices = select_voices(["espeak-ng:en-us"])
    out = tmp_path / "resume"
    generate(out, n=10, seed=3, voices=voices, workers=2)
    full_manifest = (out / "manifest.jsonl").read_bytes()
    wavs = sorted((out / "audio").glob("*.wav"))
    mtimes = {w.name: w.stat().st_mtime_ns for w in wavs}
    deleted = {wavs[2].name, wavs[7].name}
    for name in deleted:
        (out / "audio" / name).unlink()
    lines = full_manifest.decode().splitlines(keepends=True)
    (out / "manifest.jsonl").write_text("".join(lines[:4]))  # as if interrupted mid-way
    summary = generate(out, n=10, seed=3, voices=voices, workers=2)
    assert summary["rendered"] == 2 and summary["reused"] == 8
    assert (out / "manifest.jsonl").read_bytes() == full_manifest
    for w in sorted((out / "audio").glob("*.wav")):
        if w.name not in deleted:
            assert w.stat().st_mtime_ns == mtimes[w.name], f"{w.name} was rendered again"
    assert not list((out / "audio").glob(".*"))


def test_a_changed_voice_setting_renders_that_voice_anew(tmp_path):
    """A voice whose synthesizer setting changed since a corpus was made (a fixed voice spec) has its
    clips rendered again on the next run; every other clip is reused, and the manifest is the same."""
    voices = select_voices(["espeak-ng:en-us+m3", "espeak-ng:en-us+f3"])
    out = tmp_path / "respec"
    generate(out, n=10, seed=4, voices=voices, workers=2)
    manifest = (out / "manifest.jsonl").read_bytes()
    records = [json.loads(line) for line in manifest.decode().splitlines()]
    changed = {r["path"] for r in records if r["voice"] == "espeak-ng:en-us+f3"}
    assert 0 < len(changed) < len(records)
    mtimes = {p: (out / p).stat().st_mtime_ns for p in (r["path"] for r in records)}
    state = json.loads((out / ".corpus.json").read_text())
    state["voice_specs"]["espeak-ng:en-us+f3"] = "en-us+f3"  # as an older catalogue spelled it
    (out / ".corpus.json").write_text(json.dumps(state))

    summary = generate(out, n=10, seed=4, voices=voices, workers=2)
    assert summary["rendered"] == len(changed)
    assert (out / "manifest.jsonl").read_bytes() == manifest
    for path, before in mtimes.items():
        assert ((out / path).stat().st_mtime_ns != before) == (path in changed), path
    assert json.loads((out / ".corpus.json").read_text())["voice_specs"]["espeak-ng:en-us+f3"] == "gmw/en-US+f3"

    state.pop("voice_specs")  # a corpus made before settings were recorded: everything is spoken anew
    (out / ".corpus.json").write_text(json.dumps(state))
    assert generate(out, n=10, seed=4, voices=voices, workers=2)["rendered"] == 10
    with pytest.raises(CorpusError, match="other settings"):
        generate(out, n=10, seed=5, voices=voices, workers=2)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_cli_generates_a_corpus(tmp_path):
    done = _cli("corpus", "generate", str(tmp_path / "cli"), "--n", "4", "--seed", "1",
                "--voices", "espeak-ng:en-us+m3,flite:slt", "--workers", "1", "-q")
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in (tmp_path / "cli" / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 4 and {r["voice"] for r in records} <= {"espeak-ng:en-us+m3", "flite:slt"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--voices", "espeak-ng:klingon"], "unknown voice 'espeak-ng:klingon'"),
        (["--voices", "festivalx:nobody"], "unknown voice"),
    ],
)
def test_cli_bad_voice_is_one_clear_line(tmp_path, args, message):
    done = _cli("corpus", "generate", str(tmp_path / "x"), "--n", "2", *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_cli_missing_synthesizer_is_one_clear_line(tmp_path):
    """With no synthesizer on PATH the command says so instead of failing mid-run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    done = subprocess.run([*CLI, "corpus", "generate", str(tmp_path / "y"), "--n", "2"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert "no speech synthesizer found" in done.stderr and "Traceback" not in done.stderr


def test_cli_unwritable_out_dir_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = _cli("corpus", "generate", str(blocker / "corpus"), "--n", "2", "--voices", "espeak-ng:en-us+m3")
    assert done.returncode == 2
    assert "cannot write to" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_facts_from_a_record_rewrite_its_captions(small_manifest):
    """A manifest record holds every fact its captions were written from, so a trainer can word a clip
    anew from the manifest alone: the same caption rng gives back the very same captions."""
    import random

    from searchengine.corpus.captions import fine_captions, global_caption
    from searchengine.corpus.factors import facts_from_record

    from .conftest import SMALL_SEED

    for record in small_manifest:
        facts = facts_from_record(record)
        rng = random.Random(f"clsp-corpus-captions:{SMALL_SEED}:{int(record['id'])}")
        held = record["heldout_phrasing"]
        assert global_caption(facts, rng, heldout=held) == record["global_caption"]
        assert fine_captions(facts, rng, n=len(record["fine_captions"]), heldout=held) == record["fine_captions"]
    assert facts_from_record({"id": "x"})["pitch_level"] is None  # missing facts stay unknown
