"""Core columns added after a collection was made: an older collection opens read-only as it is
(the new columns read as absent) and gains them, empty, when next opened for writing."""

from __future__ import annotations

import duckdb
import numpy as np

from searchengine.store import Collection
from searchengine.store.schema import table_columns

DIM = 8
MODEL = "test-model@0123456789ab"


def unit(n: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_an_older_collection_gains_the_transcript_columns(tmp_path):
    path = tmp_path / "c"
    coll = Collection.create(path, MODEL, DIM)
    coll.add([{"source_key": "a", "source_path": "/a.wav", "duration": 1.0}], unit(1))
    coll.close()
    con = duckdb.connect(str(path / "meta.duckdb"))  # as an older version made it: no transcript columns
    con.execute('ALTER TABLE clips DROP COLUMN "transcript"')
    con.execute('ALTER TABLE clips DROP COLUMN "normalized_transcript"')
    con.close()

    reader = Collection.open(path, read_only=True)
    assert "transcript" not in table_columns(reader.con, "clips")  # read-only changes nothing
    assert reader.sql("SELECT count(*) FROM clips").fetchone() == (1,)
    reader.close()

    writer = Collection.open(path)
    assert {"transcript", "normalized_transcript"} <= set(table_columns(writer.con, "clips"))
    assert writer.sql("SELECT transcript FROM clips").fetchall() == [(None,)]
    writer.add([{"source_key": "b", "source_path": "/b.wav", "duration": 2.0, "transcript": "hello there",
                 "normalized_transcript": "hello there"}], unit(1))
    assert writer.sql("SELECT source_key, transcript FROM clips ORDER BY id").fetchall() == [
        ("a", None), ("b", "hello there")]
    writer.close()


def test_a_new_collection_has_them_from_the_start(tmp_path):
    coll = Collection.create(tmp_path / "c", MODEL, DIM)
    assert table_columns(coll.con, "clips")["transcript"] == "VARCHAR"
    assert coll.audio_dir == (tmp_path / "c").resolve() / "audio"
    coll.close()


def test_an_older_collection_gains_the_runtimes_column_of_runs(tmp_path):
    path = tmp_path / "c"
    coll = Collection.create(path, MODEL, DIM)
    with coll.transaction() as tx:
        run_id = tx.start_run("/corpus", MODEL, {})
    coll.close()
    con = duckdb.connect(str(path / "meta.duckdb"))  # as an older version made it: no runtimes column
    con.execute('ALTER TABLE runs DROP COLUMN "runtimes"')
    con.close()

    reader = Collection.open(path, read_only=True)
    assert "runtimes" not in table_columns(reader.con, "runs")
    reader.close()

    writer = Collection.open(path)
    assert table_columns(writer.con, "runs")["runtimes"] == "VARCHAR"
    assert writer.sql("SELECT id, runtimes FROM runs").fetchall() == [(run_id, None)]
    with writer.transaction() as tx:
        tx.update_run(run_id, runtimes='{"captions": "onnx float32"}')
    assert writer.sql("SELECT runtimes FROM runs").fetchone() == ('{"captions": "onnx float32"}',)
    writer.close()
