"""Merges that never block readers or writers (searchengine.store.merges): a merge is built while the
DuckDB file is free and only its commit takes it; deletions made meanwhile stay deleted; a writer and
a compacting process take in each other's generations. Real FAISS and DuckDB files, 64-d vectors."""

from __future__ import annotations

import duckdb
import pytest

from searchengine.store import Collection, CollectionError, merges
from searchengine.store import faiss_index as fi

from .test_segments import DIM, MODEL, assert_same_answers, rows, unit


def live_speech_ids(coll: Collection) -> list[int]:
    """Every live speech id, once per segment that holds it (a duplicate would show twice)."""
    return sorted(int(i) for s in coll.index("speech").segments for i in s.live_ids())


def clip_ids(coll: Collection) -> list[int]:
    """The committed rows' ids (read from the file when the writer released it between commits)."""
    con = coll.con or duckdb.connect(str(coll.path / "meta.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT id FROM clips ORDER BY id").fetchall()]
    finally:
        if con is not coll.con:
            con.close()


def reopened_whole(path) -> list[int]:
    """Reopen the collection from disk as a writer and check it is whole: every row's speech vector
    live once, and exactly the listed segment files on disk; returns the clip ids."""
    again = Collection.open(path, model_id=MODEL)
    try:
        ids = clip_ids(again)
        assert live_speech_ids(again) == ids
        assert set(p.name for p in path.glob("speech*.faiss")) == set(again.info["segments"]["speech"])
        return ids
    finally:
        again.close()


def test_a_background_merge_keeps_what_was_deleted_while_it_was_built(tmp_path):
    path = tmp_path / "c"
    coll = Collection.create(path, MODEL, DIM)
    coll.release_between_commits = coll.background_merges = True  # as the indexer runs
    for g in range(8):
        coll.add(rows(20, 20 * g), unit(20, g))
    assert coll._merges.busy  # the eighth segment of a size class: handed to the merge thread
    assert len(coll.info["segments"]["speech"]) == 8  # not listed yet: the writer did not wait for it
    coll.delete([5, 77, 150])  # in segments the merge is reading, after it took their tombstones
    coll.add(rows(20, 160), unit(20, 8))
    coll.finish_merges()  # what a run does last: the built merge is listed by a commit
    assert not coll._merges.busy
    segs = coll.info["segments"]["speech"]
    assert len(segs) <= 2 and coll.index("speech").ntotal == 177
    assert live_speech_ids(coll) == clip_ids(coll) and not {5, 77, 150} & set(clip_ids(coll))
    found = coll.search("speech", unit(4, 50), k=200)[1]
    assert not {5, 77, 150} & set(found.ravel().tolist())
    assert_same_answers(coll, "speech", unit(3, 51))
    coll.close()
    assert len(reopened_whole(path)) == 177  # the tombstones the merge kept are in DuckDB too


def test_compact_beside_a_writer_blocks_neither_and_loses_nothing(tmp_path):
    path = tmp_path / "c"
    writer = Collection.create(path, MODEL, DIM)
    writer.auto_merge = False
    writer.release_between_commits = True  # the indexer: holds the file only inside a commit
    for g in range(5):
        writer.add(rows(30, 30 * g), unit(30, g))
    writer.delete([2, 40])
    writer.release()

    compactor = Collection.open(path, model_id=MODEL)
    compactor.release_between_commits = True
    compactor.release()
    plans = [p for p in (merges.plan(compactor.indexes[k], k) for k in ("speech", "global", "fine", "speaker")) if p]
    built = [merges.build(p, compactor._choose_type) for p in plans]
    # While the merge is built: a server takes a snapshot at once, the writer commits and deletes.
    snapshot = Collection.open_snapshot(path, wait_s=0.5)
    assert snapshot.index("speech").ntotal == 148
    snapshot.close()
    writer.add(rows(30, 150), unit(30, 9))
    writer.delete([100])  # in a segment being merged: must stay deleted
    assert compactor.commit_merges(built, always=True) == 1  # takes in the writer's two commits
    assert len(compactor.info["segments"]["speech"]) == 2  # the merged one and the writer's new one
    compactor.close()

    writer.add(rows(10, 180), unit(10, 10))  # takes in the merged generation, then commits its own
    assert writer.index("speech").ntotal == 187 and live_speech_ids(writer) == clip_ids(writer)
    assert_same_answers(writer, "speech", unit(3, 60))
    writer.close()
    ids = reopened_whole(path)
    assert len(ids) == 187 and not {2, 40, 100} & set(ids)


def test_a_stale_merge_is_dropped_and_an_indexer_still_refuses_another_indexers_rows(tmp_path):
    path = tmp_path / "c"
    first = Collection.create(path, MODEL, DIM)
    first.auto_merge = False
    for g in range(3):
        first.add(rows(10, 10 * g), unit(10, g))
    stale = [merges.build(merges.plan(first.indexes["speech"], "speech"), first._choose_type)]
    first.compact()  # merges the same segments first
    generation = first.generation
    assert first.commit_merges(stale) == 0 and first.generation == generation  # nothing listed, no commit
    first.release_between_commits = True
    first.release()

    other = Collection.open(path, model_id=MODEL)
    other.add(rows(5, 100), unit(5, 7))  # another indexer adds clips
    other.close()
    with pytest.raises(CollectionError, match="another process indexed into it"):
        first.add(rows(5, 200), unit(5, 8))
    first.close()


def test_a_merge_built_on_a_thread_gives_the_type_its_size_calls_for(tmp_path):
    """The index type of a merged segment is chosen (IVF trained and recall-checked) while it is built,
    not in the commit; a declined type is recorded the same way."""
    path = tmp_path / "c"
    coll = Collection.create(path, MODEL, DIM, index_factory="IVF16,Flat")
    coll.auto_merge = False
    for g in range(4):
        coll.add(rows(1000, 1000 * g), unit(1000, g))
    plan = merges.plan(coll.indexes["speech"], "speech")
    built = merges.build(plan, coll._choose_type)
    assert built.choice is not None and built.choice["factory"] in ("IVF16,Flat", "Flat")
    expected_family = fi.family(built.choice["factory"])
    assert coll.commit_merges([built]) == 1
    assert coll.info["indexes"]["speech"]["choice"] == built.choice
    assert fi.family(coll.info["indexes"]["speech"]["factory"]) == expected_family
    assert coll.index("speech").ntotal == 4000
    coll.close()
