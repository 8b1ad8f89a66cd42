"""Immutable segments (issue 38): a commit adds segment files, deletions are tombstones, search over
segments equals search over one index of the same vectors, old one-file-per-kind collections open as
one segment and upgrade on their next commit. Real FAISS and DuckDB files, 64-d vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from searchengine.store import Caption, Collection, segment_log
from searchengine.store import faiss_index as fi

DIM = 64
MODEL = "seg-model@000000000000"
LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_collection"
"""Written by the code before segments (commit fc373fb): 30 clips, 30 global captions, clips 3 and 4
deleted, one `<kind>.faiss` per kind."""


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rows(n: int, offset: int) -> list[dict]:
    return [{"source_key": f"k{offset + i}", "source_path": f"/a/{offset + i}.wav", "duration": 1.0 + i} for i in range(n)]


def one_index(coll: Collection, kind: str) -> faiss.Index:
    """A single Flat index over the collection's live vectors of `kind`: what segments must equal."""
    ids, vecs = fi.ids_and_vectors(coll.index(kind))
    flat = fi.new_index("Flat", vecs.shape[1])
    fi.add(flat, vecs, ids)
    return flat


def assert_same_answers(coll: Collection, kind: str, queries: np.ndarray) -> None:
    reference = one_index(coll, kind)
    ids = np.sort(fi.ids_and_vectors(reference)[0])
    rng = np.random.default_rng(5)
    filters = [None, np.sort(rng.choice(ids, 12, replace=False)), np.sort(rng.choice(ids, len(ids) * 3 // 4, replace=False))]
    for q in queries:
        for allowed in filters:
            for excluded in (set(), {int(ids[0]), int(ids[-1])}):
                got = fi.search_ids(coll.index(kind), q, 10, allowed, excluded)
                want = fi.search_ids(reference, q, 10, allowed, excluded)
                assert got[1].tolist() == want[1].tolist()
                assert np.array_equal(got[0], want[0])  # exact: the very same float scores


def test_commits_add_segments_and_search_equals_one_index(tmp_path):
    coll = Collection.create(tmp_path / "c", MODEL, DIM)
    for g in range(4):
        caps = [Caption(i, "fine", f"f{g}.{i}") for i in range(50)] * 2
        coll.add(rows(50, 50 * g), unit(50, g), caps, unit(100, 10 + g))
    coll.delete([3, 60, 61, 199])  # tombstones in the first, second and last segments
    segs = coll.info["segments"]
    assert len(segs["speech"]) == 4 and len(segs["fine"]) == 4 and coll.index("speech").ntotal == 196
    assert coll.info["indexes"]["speech"]["tombstones"] == 4
    # A commit writes only what it adds: the earlier files are untouched, and the new one is small.
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c").glob("*.faiss")}
    coll.add(rows(5, 500), unit(5, 99))
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c").glob("*.faiss")}
    assert {n: t for n, t in after.items() if n in before} == before and set(after) - set(before) == {"speech.g6-0.faiss"}

    for kind in ("speech", "fine"):
        assert_same_answers(coll, kind, unit(6, 42))
    scores, found = coll.search("speech", unit(3, 43), k=400)
    assert found.shape == (3, 201) and not {3, 60, 61, 199} & set(found.ravel().tolist())
    coll.close()

    again = Collection.open(tmp_path / "c", model_id=MODEL)  # tombstones and segments come back from DuckDB
    assert again.index("speech").ntotal == 201 and again.stats()["counts"]["clips"] == 201
    assert_same_answers(again, "speech", unit(3, 44))
    again.close()


def test_tombstones_hide_deleted_clips_until_a_merge_drops_them(tmp_path):
    coll = Collection.create(tmp_path / "c", MODEL, DIM)
    vecs = unit(60, 1)
    coll.add(rows(30, 0), vecs[:30])
    coll.add(rows(30, 30), vecs[30:])
    gone = [1, 2, 31, 40]
    coll.delete(gone)
    for q in vecs[[0, 1, 30, 39]]:  # the deleted clips' own vectors: each was its own best match
        _, found, _ = fi.search_ids(coll.index("speech"), q, 60, None)
        assert not set(gone) & set(found.tolist()) and len(found) == 56
    assert len(segment_log.tombstones(coll.con, "speech")) == 4
    with pytest.raises(RuntimeError):
        coll.vectors("speech", [31])
    old_files = set(coll.info["segments"]["speech"])
    coll.compact()  # one segment, deleted vectors left out, their tombstones forgotten, old files removed
    assert len(coll.info["segments"]["speech"]) == 1 and len(segment_log.tombstones(coll.con, "speech")) == 0
    assert not any((tmp_path / "c" / f).exists() for f in old_files)
    assert coll.index("speech").segments[0].index.ntotal == 56
    assert np.allclose(coll.vectors("speech", [5, 50]), vecs[[4, 49]])
    coll.close()


def test_a_reader_keeps_its_generation_while_a_writer_commits(tmp_path):
    coll = Collection.create(tmp_path / "c", MODEL, DIM)
    coll.release_between_commits = True
    coll.add(rows(20, 0), unit(20, 1))
    snap = Collection.open_snapshot(tmp_path / "c")
    coll.add(rows(20, 20), unit(20, 2))
    coll.delete([1, 2])
    coll.compact()  # replaces the files the snapshot was loaded from
    assert snap.index("speech").ntotal == 20 and snap.stats()["counts"]["clips"] == 20
    _, found, _ = fi.search_ids(snap.index("speech"), unit(1, 1)[0], 5, None)
    assert found[0] == 1  # the clip deleted since is still there in the snapshot's generation
    fresh = Collection.open_snapshot(tmp_path / "c")
    assert fresh.index("speech").ntotal == 38 and fresh.generation == snap.generation + 3
    snap.close()
    fresh.close()


def test_an_old_one_file_per_kind_collection_opens_and_upgrades_in_place(tmp_path):
    path = tmp_path / "old"
    shutil.copytree(LEGACY, path)
    old_speech = faiss.read_index(str(path / "speech.faiss"))
    queries = unit(4, 7)
    want = old_speech.search(queries, 5)

    ro = Collection.open(path, read_only=True)  # reads as one segment per kind, changes nothing
    assert ro.index("speech").ntotal == 28 and len(ro.index("speech").segments) == 1
    got = ro.search("speech", queries, 5)
    assert np.array_equal(got[1], want[1]) and np.array_equal(got[0], want[0])
    ro.close()
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in LEGACY.iterdir())

    coll = Collection.open(path)
    coll.delete([5])
    coll.add(rows(2, 100), unit(2, 8))  # next commit: the old files become listed segments
    info = json.loads((path / "collection.json").read_text())
    assert info["segments"]["speech"] == ["speech.faiss", "speech.g4-0.faiss"] and info["segments"]["speaker"] == []
    assert not (path / "speaker.faiss").exists()  # an empty old file is not kept as a segment
    assert coll.index("speech").ntotal == 29 and coll.stats()["counts"]["clips"] == 29
    coll.close()
    again = Collection.open(path)
    assert again.index("speech").ntotal == 29 and again.index("global").ntotal == 27  # clip 5's caption went with it
    _, found = again.search("speech", queries, 30)
    assert 5 not in found.ravel().tolist()
    again.close()


def test_commits_merge_automatically_past_a_segment_count(tmp_path):
    coll = Collection.create(tmp_path / "c", MODEL, DIM)
    vecs = unit(90, 3)
    for g in range(7):
        coll.add(rows(10, 10 * g), vecs[10 * g:10 * g + 10])
    coll.delete([2])
    assert len(coll.info["segments"]["speech"]) == 7
    coll.add(rows(10, 70), vecs[70:80])  # the eighth segment of one size class: merged into one
    assert coll.info["segments"]["speech"] == ["speech.g10-0.faiss"] and coll.index("speech").ntotal == 79
    assert len(segment_log.tombstones(coll.con, "speech")) == 0 and len(list((tmp_path / "c").glob("speech.*"))) == 1
    coll.add(rows(10, 80), vecs[80:])  # a small one after the big one stays apart
    assert len(coll.info["segments"]["speech"]) == 2
    assert_same_answers(coll, "speech", unit(3, 4))
    coll.close()


@pytest.mark.parametrize("point,merged", [("before_db_commit", False), ("after_db_commit", True)])
def test_a_crash_inside_compact_leaves_one_whole_generation(tmp_path, point, merged):
    import os
    import subprocess
    import sys

    from searchengine.store.check import problems

    path = tmp_path / "c"
    coll = Collection.create(path, MODEL, DIM)
    for g in range(3):
        coll.add(rows(10, 10 * g), unit(10, g), [Caption(i, "global", "g") for i in range(10)], unit(10, 20 + g))
    coll.delete([4, 15])
    gen, files = coll.generation, set(coll.info["segments"]["speech"])
    coll.close()
    env = {**os.environ, "CLSP_SEARCH_KILL_AT": point}
    proc = subprocess.run([sys.executable, "-m", "cli", "compact", str(path)], env=env, capture_output=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    after = Collection.open(path)
    assert problems(after) == [] and after.index("speech").ntotal == 28
    assert after.generation == gen + (1 if merged else 0)
    speech = set(after.info["segments"]["speech"])
    assert (len(speech) == 1 and not files & speech) if merged else speech == files
    left = {p.name for p in path.glob("*.faiss*")}
    assert left == {f for k in ("speech", "global") for f in after.info["segments"][k]}  # no leftovers
    after.close()


def _ray_write(vectors: np.ndarray, ids: np.ndarray, path: str) -> str:
    from searchengine.store.segments import write_segment

    return str(write_segment(vectors, ids, path))


def test_two_ray_workers_segments_are_published_by_one_commit(tmp_path):
    ray = pytest.importorskip("ray")
    coll = Collection.create(tmp_path / "c", MODEL, DIM)
    coll.add(rows(10, 0), unit(10, 0))
    vecs = unit(40, 1)
    (tmp_path / "incoming").mkdir()
    started = not ray.is_initialized()  # an indexer run earlier in this process keeps its instance
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        write = ray.remote(_ray_write)
        with coll.transaction() as tx:
            ids = tx.reserve_clip_ids(40)
            files = ray.get([write.remote(vecs[:20], ids[:20], str(tmp_path / "incoming" / "a.faiss")),
                             write.remote(vecs[20:], ids[20:], str(tmp_path / "incoming" / "b.faiss"))])
            assert sorted(Path(f).name for f in files) == ["a.faiss", "b.faiss"]
            tx.add(rows(40, 10), None, reserved=ids)
            for f in files:
                assert tx.adopt_segment("speech", f) == 20
            with pytest.raises(ValueError, match="did not reserve"):  # ids nobody reserved are refused
                tx.adopt_segment("speech", _ray_write(vecs[:2], np.array([900, 901]), str(tmp_path / "x.faiss")))
    finally:
        if started:
            ray.shutdown()
    assert coll.info["segments"]["speech"] == ["speech.g1-0.faiss", "speech.g2-0.faiss", "speech.g2-1.faiss"]
    assert not list((tmp_path / "incoming").iterdir())  # renamed into the collection, not copied
    coll.close()
    snap = Collection.open_snapshot(tmp_path / "c")
    from searchengine.store.check import problems

    assert snap.generation == 2 and snap.index("speech").ntotal == 50 and problems(snap) == []
    _, found = snap.search("speech", vecs[[0, 39]], 1)
    assert found[:, 0].tolist() == [int(ids[0]), int(ids[39])]
    snap.close()
    coll = Collection.open(tmp_path / "c")
    # Ids handed out by an allocator (the indexer's Ray actors) are claimed, not reserved: any order,
    # never one in use; caption segments need claimed caption ids too.
    with coll.transaction() as tx:
        with pytest.raises(ValueError, match="already in use"):
            tx.claim_ids(np.array([3]))
        tx.claim_ids(np.array([70, 71]), np.array([5]))
        tx.add(rows(2, 70), None, [Caption(0, "global", "g")], None, reserved=np.array([70, 71]),
               caption_ids=np.array([5]))
        tx.adopt_segment("speech", _ray_write(vecs[:2], np.array([70, 71]), str(tmp_path / "s.faiss")))
        tx.adopt_segment("global", _ray_write(vecs[2:3], np.array([5]), str(tmp_path / "g.faiss")))
        with pytest.raises(ValueError, match="did not claim"):
            tx.adopt_segment("fine", _ray_write(vecs[3:4], np.array([6]), str(tmp_path / "f.faiss")))
    assert coll.index("global").contains(np.array([5])).all() and coll.stats()["counts"]["clips"] == 52
    with coll.transaction() as tx:  # the counters moved past the claimed ids
        assert tx.reserve_clip_ids(1)[0] == 72
    coll.close()
