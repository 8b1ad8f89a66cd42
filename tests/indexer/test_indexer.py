"""The indexer end to end: generated corpus -> collection, with the real model, FAISS and DuckDB."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from indexer.pipeline import audio_span, run_index
from searchengine.store import Collection
from searchengine.store.check import problems

from .conftest import MODEL, N_CLIPS, cli_app, expected_text_runtime, index_cmd


def manifest_rows(corpus: Path) -> list[dict]:
    return [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def key_vectors(path: Path) -> dict[str, np.ndarray]:
    """source_key -> speech vector (first segment) of a collection."""
    coll = Collection.open(path, read_only=True)
    rows = coll.sql("SELECT id, source_key FROM clips WHERE segment = 0").fetchall()
    out = {key: coll.vectors("speech", [cid])[0] for cid, key in rows}
    coll.close()
    return out


@pytest.fixture(scope="module")
def built(corpus, encoder, tmp_path_factory) -> Path:
    """The corpus indexed in one uninterrupted run (the reference the other tests compare with)."""
    out = tmp_path_factory.mktemp("built") / "coll"
    run_index(corpus / "manifest.jsonl", out, encoder, workers=1, progress=False)
    return out


def test_round_trip_counts_columns_and_search(built, corpus, encoder):
    rows = manifest_rows(corpus)
    coll = Collection.open(built, model_id=encoder.model_id, read_only=True)
    stats = coll.stats()["counts"]
    assert stats["sources"] == N_CLIPS == len(rows)
    assert stats["clips"] == coll.index("speech").ntotal == N_CLIPS  # every generated clip is < 30 s
    assert stats["global_captions"] == coll.index("global").ntotal == sum(1 for r in rows if r["global_caption"])
    assert stats["fine_captions"] == coll.index("fine").ntotal == sum(len(r["fine_captions"]) for r in rows)
    assert stats["errors"] == 0
    types = dict(coll.sql(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'clips'").fetchall())
    for attribute, value in rows[0]["attributes"].items():  # flattened, typed attribute columns
        if isinstance(value, float):
            assert types[attribute] == "DOUBLE"
        if isinstance(value, str):
            assert types[attribute] == "VARCHAR"
    assert types["voice"] == "VARCHAR" and types["manifest_duration"] == "DOUBLE"
    first = rows[0]
    got = coll.sql("SELECT source_path, global_caption, fine_captions, voice, duration FROM clips WHERE source_key = ?",
                   [first["id"]]).fetchone()
    assert got[0] == str((corpus / first["path"]).resolve())
    assert got[1] == first["global_caption"] and got[2] == first["fine_captions"] and got[3] == first["voice"]
    assert got[4] == pytest.approx(first["duration"], abs=0.01)
    # each clip's own audio finds itself first; vectors match a direct encode
    wave, sr = sf.read(corpus / first["path"], dtype="float32")
    q = encoder.encode_speech([wave], sr)
    scores, ids = coll.search("speech", q, k=1)
    assert coll.sql("SELECT source_key FROM clips WHERE id = ?", [int(ids[0, 0])]).fetchone()[0] == first["id"]
    assert scores[0, 0] > 0.999
    coll.close()


def test_the_run_row_keeps_the_runtimes_of_speech_and_captions(built):
    coll = Collection.open(built, read_only=True)
    stored = json.loads(coll.sql("SELECT runtimes FROM runs WHERE status = 'done'").fetchone()[0])
    coll.close()
    assert (stored["speech"], stored["captions"]) == ("torch cpu float32", expected_text_runtime())


def test_rerun_is_a_no_op(built, corpus, encoder, tmp_path):
    copy = tmp_path / "coll"
    shutil.copytree(built, copy)
    s = run_index(corpus / "manifest.jsonl", copy, encoder, workers=0, progress=False)
    assert (s.files_added, s.files_unchanged, s.clips_added) == (0, N_CLIPS, 0)


def _processes_mentioning(text: str, wait: float) -> list[int]:
    """Pids whose command line contains `text`, after giving orphans up to `wait` seconds to exit."""
    deadline = time.time() + wait
    while True:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                        pids.append(int(entry.name))
                except OSError:
                    continue
        if not pids or time.time() > deadline:
            return pids
        time.sleep(0.1)


def test_kill_9_mid_run_then_resume_equals_single_run(built, corpus, tmp_path):
    coll = tmp_path / "coll"
    args = [str(corpus / "manifest.jsonl"), "--collection", str(coll), "--model", MODEL, "--device", "cpu",
            "--workers", "1", "--commit-every", "4", "--quiet"]
    proc = subprocess.Popen(index_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    generation = 0
    while time.time() < deadline and proc.poll() is None:
        info = coll / "collection.json"
        if info.exists():
            generation = json.loads(info.read_text())["generation"]
            if generation >= 3:  # some commits done, the run far from finished
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not _processes_mentioning(str(coll), wait=5.0), "decode workers outlived the killed indexer"
    partial = Collection.open(coll, read_only=True)
    done = partial.stats()["counts"]["sources"]
    partial.close()
    assert 0 < done < N_CLIPS

    result = subprocess.run(index_cmd(*args), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{N_CLIPS - done} added, {done} unchanged" in result.stdout  # committed work is not redone

    resumed = Collection.open(coll, read_only=True)
    keys = resumed.sql("SELECT source_key, count(*) FROM clips GROUP BY source_key HAVING count(*) > 1").fetchall()
    assert keys == []  # no duplicates
    assert resumed.index("speech").ntotal == resumed.stats()["counts"]["clips"] == N_CLIPS
    assert resumed.sql("SELECT count(*) FROM runs WHERE status = 'interrupted'").fetchone()[0] == 1
    killed = json.loads(resumed.sql("SELECT runtimes FROM runs WHERE status = 'interrupted'").fetchone()[0])
    assert killed["speech"] == "torch cpu float32" and killed["captions"]  # named at its commits, before the kill
    resumed.close()
    a, b = key_vectors(built), key_vectors(coll)
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4


def test_bad_files_are_recorded_and_counted(corpus, encoder, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted((corpus / "audio").glob("*.wav"))[:3]
    for f in good:
        shutil.copy(f, folder / f.name)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.wav").write_bytes(good[0].read_bytes()[:44] + b"\x00garbage" * 3)
    (folder / "notes.flac").write_text("this is not audio")
    sf.write(folder / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(folder / "short.ogg", 0.3 * np.ones(400, np.float32), 16000)
    (folder / "ignored.txt").write_text("not an audio extension: never considered")
    s = run_index(folder, tmp_path / "coll", encoder, workers=1, progress=False)
    assert s.files_total == 8 and s.files_added == 3 and s.files_failed == 5
    assert s.failures["empty"] == s.failures["silent"] == 1 and s.failures["not_audio"] >= 1
    assert s.failures["too_short"] >= 1 and sum(s.failures.values()) == 5  # corrupt.wav: not_audio or too_short
    coll = Collection.open(tmp_path / "coll", read_only=True)
    errors = dict(coll.sql("SELECT regexp_extract(path, '[^/]+$'), reason FROM errors").fetchall())
    assert errors["empty.wav"] == "empty" and errors["silent.wav"] == "silent" and errors["short.ogg"] == "too_short"
    assert errors["notes.flac"] == "not_audio" and "corrupt.wav" in errors
    assert coll.stats()["counts"]["clips"] == 3
    coll.close()
    again = run_index(folder, tmp_path / "coll", encoder, workers=0, progress=False)
    assert (again.files_added, again.files_failed, again.files_known_bad) == (0, 0, 5)


def test_progress_bar_counts_audio_and_failures_as_files_arrive(corpus, encoder, tmp_path, capsys):
    """The bar's audio, real-time factor and failures come from the files embedded so far, not from
    what has been committed (a run shorter than one commit used to show 0 audio and 0x real time)."""
    folder = tmp_path / "some"
    folder.mkdir()
    for f in sorted((corpus / "audio").glob("*.wav"))[:3]:
        shutil.copy(f, folder / f.name)
    (folder / "empty.wav").write_bytes(b"")
    s = run_index(folder, tmp_path / "coll", encoder, workers=0, progress=True)
    assert s.files_added == 3 and s.files_failed == 1
    value, unit, failed, xrt = re.findall(r"audio=([0-9.]+) (s|min|h), failed=(\d+), xRT=([0-9.]+)",
                                          capsys.readouterr().err)[-1]
    assert float(value) * {"s": 1, "min": 60, "h": 3600}[unit] == pytest.approx(s.audio_seconds, rel=0.01, abs=0.06)
    assert int(failed) == 1 and float(xrt) > 0


def test_audio_span_reads_as_seconds_minutes_or_hours():
    assert [audio_span(x) for x in (12.34, 150, 7200)] == ["12.3 s", "2.5 min", "2.00 h"]


def test_grown_and_changed_corpus_embeds_only_new_work(corpus, encoder, tmp_path):
    rows = manifest_rows(corpus)
    audio = tmp_path / "audio"
    shutil.copytree(corpus / "audio", audio)
    manifest = tmp_path / "manifest.jsonl"
    rows = rows[:12]
    write_manifest(manifest, rows[:8])
    first = run_index(manifest, tmp_path / "coll", encoder, workers=0, progress=False)
    assert first.files_added == 8

    write_manifest(manifest, rows)  # grown by 4
    changed = audio / Path(rows[0]["path"]).name
    wave, sr = sf.read(changed, dtype="float32")
    sf.write(changed, wave[::-1].copy(), sr)  # same length, different content
    grown = run_index(manifest, tmp_path / "coll", encoder, workers=0, progress=False)
    assert (grown.files_added, grown.files_unchanged, grown.clips_deleted) == (5, 7, 1)

    write_manifest(manifest, rows[2:])  # two items gone from the source
    kept = run_index(manifest, tmp_path / "coll", encoder, workers=0, progress=False)
    assert (kept.files_added, kept.clips_deleted) == (0, 0)
    pruned = run_index(manifest, tmp_path / "coll", encoder, workers=0, delete_missing=True, progress=False)
    assert (pruned.files_added, pruned.clips_deleted) == (0, 2)
    coll = Collection.open(tmp_path / "coll", read_only=True)
    assert coll.stats()["counts"]["sources"] == 10 == coll.index("speech").ntotal
    assert coll.sql("SELECT count(*) FROM clips WHERE source_key = ?", [rows[0]["id"]]).fetchone()[0] == 0
    coll.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_manifests(corpus, encoder, tmp_path, fmt):
    rows = manifest_rows(corpus)[:4]
    jsonl = write_manifest(corpus / f"subset-{fmt}.jsonl", rows)
    out = corpus / f"subset.{fmt}"
    con = duckdb.connect()
    if fmt == "csv":  # CSV cannot nest: captions as a JSON list, attributes dropped
        con.execute(f"COPY (SELECT id, path, voice, global_caption, to_json(fine_captions) AS fine_captions "
                    f"FROM read_json_auto('{jsonl}')) TO '{out}' (HEADER)")
    else:
        con.execute(f"COPY (SELECT * FROM read_json_auto('{jsonl}')) TO '{out}' (FORMAT parquet)")
    s = run_index(out, tmp_path / "coll", encoder, workers=0, progress=False)
    assert s.files_added == 4 and s.files_failed == 0
    coll = Collection.open(tmp_path / "coll", read_only=True)
    got = coll.sql("SELECT fine_captions, voice FROM clips WHERE source_key = ?", [rows[0]["id"]]).fetchone()
    assert got == (rows[0]["fine_captions"], rows[0]["voice"])
    assert coll.index("fine").ntotal == sum(len(r["fine_captions"]) for r in rows)
    coll.close()


def test_bad_manifest_stops_with_one_line_naming_the_column(corpus, tmp_path):
    runner = CliRunner()
    no_path = write_manifest(corpus / "no-path.jsonl", [{"id": "a", "file": "audio/x.wav"}])
    res = runner.invoke(cli_app(), [str(no_path), "--collection", str(tmp_path / "c")])
    assert res.exit_code == 2 and "'path'" in res.output and len(res.output.strip().splitlines()) == 1
    bad_start = write_manifest(corpus / "bad-start.jsonl", [{"path": "audio/x.wav", "start": "soon"}])
    res = runner.invoke(cli_app(), [str(bad_start), "--collection", str(tmp_path / "c")])
    assert res.exit_code == 2 and "'start'" in res.output
    assert not (tmp_path / "c").exists()


def test_other_model_is_refused(corpus, tmp_path):
    Collection.create(tmp_path / "c", "some-other-model@abcdef", 512).close()
    res = CliRunner().invoke(
        cli_app(), [str(corpus / "manifest.jsonl"), "--collection", str(tmp_path / "c"), "--model", MODEL, "-q"])
    assert res.exit_code == 2 and "some-other-model@abcdef" in res.output


def test_rebuild_on_model_change_sets_the_old_collection_aside(corpus, tmp_path):
    rows = manifest_rows(corpus)[:2]
    manifest = write_manifest(tmp_path / "two.jsonl", [{**r, "path": str(corpus / r["path"])} for r in rows])
    Collection.create(tmp_path / "c", "some-other-model@abcdef", 512).close()
    args = [str(manifest), "--collection", str(tmp_path / "c"), "--model", MODEL, "-q", "--no-attributes",
            "--workers", "0", "--rebuild-on-model-change"]
    res = CliRunner().invoke(cli_app(), args)
    assert res.exit_code == 0, res.output
    assert "moved to" in res.output
    previous = Collection.open(tmp_path / "c.previous", read_only=True)
    assert previous.stats()["model_id"] == "some-other-model@abcdef"
    previous.close()
    rebuilt = Collection.open(tmp_path / "c", read_only=True)
    assert rebuilt.stats()["model_id"] != "some-other-model@abcdef"
    assert rebuilt.sql("SELECT count(*) FROM clips").fetchone()[0] == 2
    rebuilt.close()
    # the same model again: nothing is moved, nothing re-embedded
    res = CliRunner().invoke(cli_app(), args)
    assert res.exit_code == 0 and "moved to" not in res.output


def test_ray_path_yields_the_same_vectors(built, corpus, encoder, tmp_path):
    pytest.importorskip("ray", reason="the --ray backend is optional (pip install 'ray[data]')")
    rows = manifest_rows(corpus)[:4]
    manifest = write_manifest(corpus / "ray-subset.jsonl", rows)
    (tmp_path / "coll" / "incoming").mkdir(parents=True)
    (tmp_path / "coll" / "incoming" / "killed-run.speech.faiss").write_bytes(b"left by a killed run")
    s = run_index(manifest, tmp_path / "coll", encoder, backend="ray", ray_actors=2, chunk_files=2,
                  model_spec=MODEL, progress=False)
    assert s.files_added == 4
    a, b = key_vectors(built), key_vectors(tmp_path / "coll")
    assert set(b) == {r["id"] for r in rows}
    assert max(float(np.abs(a[k] - b[k]).max()) for k in b) < 1e-4
    # The actors wrote the vectors as segment files; the driver's commits adopted (renamed) them.
    assert not list((tmp_path / "coll" / "incoming").iterdir())
    coll = Collection.open(tmp_path / "coll", read_only=True)
    assert problems(coll) == []  # every FAISS id has its row and every row its vector
    reference = Collection.open(built, read_only=True)
    keys = tuple(r["id"] for r in rows)
    for kind, sql in (("speaker", "SELECT id FROM clips WHERE list_contains(?, source_key) ORDER BY source_key, segment"),
                      ("global", "SELECT c.id FROM captions c JOIN clips k ON k.id = c.clip_id WHERE c.kind = 'global' "
                                 "AND list_contains(?, k.source_key) ORDER BY k.source_key, c.text"),
                      ("fine", "SELECT c.id FROM captions c JOIN clips k ON k.id = c.clip_id WHERE c.kind = 'fine' "
                               "AND list_contains(?, k.source_key) ORDER BY k.source_key, c.text")):
        ids = [i for (i,) in coll.sql(sql, [list(keys)]).fetchall()]
        ref = [i for (i,) in reference.sql(sql, [list(keys)]).fetchall()]
        have = coll.index(kind).contains(np.array(ids, np.int64))
        assert len(ids) == len(ref) and have.sum() == reference.index(kind).contains(np.array(ref, np.int64)).sum() > 0
        np.testing.assert_allclose(coll.vectors(kind, np.array(ids)[have]), reference.vectors(kind, np.array(ref)[have]),
                                   atol=1e-4)
    coll.close()
    reference.close()
