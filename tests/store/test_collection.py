"""Collections on disk with real FAISS and DuckDB files: round trips, deletes, crashes, model checks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from searchengine.store import Caption, Collection, CollectionError, ModelMismatchError

DIM = 512
MODEL = "test-model@0123456789ab"
REPO = Path(__file__).resolve().parents[2]


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clips(n: int, offset: int = 0) -> list[dict]:
    return [
        {
            "source_key": f"k{offset + i}",
            "source_path": f"/audio/{offset + i}.wav",
            "duration": 1.0 + i,
            "pitch_hz": 100.0 + i,
            "gender": "female" if i % 2 else "male",
            "timbre": ["breathy", "warm"],
            "fine_captions": [f"fine {i}"],
        }
        for i in range(n)
    ]


def filled(path: Path, n: int = 20) -> tuple[Collection, np.ndarray, np.ndarray]:
    coll = Collection.create(path, MODEL, DIM)
    speech = unit(n, 1)
    caps = [Caption(i, "global", f"global {i}") for i in range(n)] + [Caption(i, "fine", f"fine {i}") for i in range(n)]
    ids = coll.add(clips(n), speech, caps, unit(2 * n, 2))
    return coll, ids, speech


def test_round_trip_add_search_reopen(tmp_path):
    coll, ids, speech = filled(tmp_path / "c")
    assert list(ids) == list(range(1, 21))
    scores, hits = coll.search("speech", speech[:5], k=3)
    assert list(hits[:, 0]) == list(ids[:5]) and np.allclose(scores[:, 0], 1.0, atol=1e-5)
    coll.close()

    info = json.loads((tmp_path / "c" / "collection.json").read_text())
    assert info["model_id"] == MODEL and info["dim"] == DIM and info["metric"] == "ip"
    assert info["counts"]["clips"] == 20 and info["counts"]["fine_captions"] == 20
    assert {p.name for p in (tmp_path / "c").iterdir()} == {  # one new segment per kind the commit added to
        "collection.json", "meta.duckdb", "speech.g1-0.faiss", "global.g1-0.faiss", "fine.g1-0.faiss"
    }

    coll = Collection.open(tmp_path / "c", model_id=MODEL, read_only=True)
    assert coll.index("speech").ntotal == 20 and coll.index("global").ntotal == 20
    assert np.allclose(coll.vectors("speech", [3]), speech[2])
    types = dict(coll.sql("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'clips'").fetchall())
    assert types["pitch_hz"] == "DOUBLE" and types["gender"] == "VARCHAR" and types["timbre"] == "VARCHAR[]"
    n, = coll.sql("SELECT count(*) FROM clips WHERE pitch_hz > ? AND gender = ?", [110.0, "female"]).fetchone()
    assert n == 5
    # a caption hit maps back to its clip
    _, cap_hits = coll.search("global", unit(40, 2)[:1], k=1)
    assert coll.caption_clip_ids(cap_hits[0]) == {int(cap_hits[0][0]): 1}
    with pytest.raises(CollectionError):
        coll.add(clips(1, 99), unit(1))
    coll.close()


def test_delete_and_compact(tmp_path):
    coll, ids, speech = filled(tmp_path / "c")
    assert coll.delete([2, 3, 1000]) == 2
    _, hits = coll.search("speech", speech[1:3], k=20)
    assert 2 not in hits and 3 not in hits
    assert coll.index("global").ntotal == 18 and coll.index("fine").ntotal == 18
    coll.compact()
    coll.close()
    coll = Collection.open(tmp_path / "c", model_id=MODEL)
    assert coll.stats()["counts"]["clips"] == 18
    assert coll.index("speech").ntotal == 18
    assert coll.sql("SELECT count(*) FROM captions WHERE clip_id IN (2, 3)").fetchone()[0] == 0
    _, hits = coll.search("speech", speech[4:5], k=1)
    assert hits[0, 0] == 5
    more = coll.add(clips(2, 50), unit(2, 9))
    assert list(more) == [21, 22]  # ids are never reused after deletes
    coll.close()


def test_model_mismatch_names_the_needed_model(tmp_path):
    filled(tmp_path / "c")[0].close()
    with pytest.raises(ModelMismatchError, match="test-model@0123456789ab"):
        Collection.open(tmp_path / "c", model_id="clsp-mini@ffffffffffff")


def test_unnormalised_or_misshaped_vectors_are_refused(tmp_path):
    coll = Collection.create(tmp_path / "c", MODEL, DIM)
    with pytest.raises(ValueError, match="normalised"):
        coll.add(clips(2), unit(2) * 3)
    with pytest.raises(ValueError, match="shape"):
        coll.add(clips(2), unit(3))
    assert coll.stats()["counts"]["clips"] == 0 and coll.index("speech").ntotal == 0
    coll.close()


def test_ivf_factory_is_used_once_trainable_and_supports_delete(tmp_path):
    coll = Collection.create(tmp_path / "c", MODEL, DIM, index_factory="IVF16,Flat")
    coll.add(clips(100), unit(100, 3))
    assert coll.info["indexes"]["speech"]["factory"] == "IDMap2,Flat"  # too few points to train 16 lists
    data = unit(900, 4)
    coll.add(clips(900, 100), data)
    assert coll.info["indexes"]["speech"]["factory"] == "IVF16,Flat"
    _, hits = coll.search("speech", data[:50], k=1)
    assert (hits[:, 0] == np.arange(101, 151)).mean() > 0.9
    assert coll.delete([101, 102]) == 2
    coll.close()
    coll = Collection.open(tmp_path / "c", read_only=True)
    _, hits = coll.search("speech", data[:2], k=5)
    assert 101 not in hits and 102 not in hits and coll.index("speech").ntotal == 998
    coll.close()


def test_ivf_rebuild_keeps_every_id_and_its_vector():
    from searchengine.store import faiss_index as fi

    data = unit(1200, 5)
    ids = np.arange(1200, dtype=np.int64) * 3 + 7
    ivf = fi.new_index("IVF16,Flat", DIM)
    fi.train(ivf, data)
    fi.add(ivf, data, ids)
    fi.remove(ivf, ids[:10])
    got_ids, got = fi.ids_and_vectors(ivf)
    order = np.argsort(got_ids)
    assert np.array_equal(got_ids[order], ids[10:])
    np.testing.assert_allclose(got[order], data[10:], atol=1e-6)  # IVF,Flat stores vectors exactly
    flat = fi.rebuild(ivf, "IDMap2,Flat", DIM)
    _, hits = flat.search(data[10:20], 1)
    assert np.array_equal(hits[:, 0], ids[10:20])


CRASH = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    from searchengine.store import Collection, collection, faiss_index
    mode = {mode!r}
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "before_db_commit":   # pending index written, DuckDB not committed
        real_write = faiss_index.write
        def write(index, path):
            real_write(index, path)
            die()
        faiss_index.write = write
    else:                             # DuckDB committed, index files not yet renamed
        real_replace = os.replace
        def replace(src, dst):
            if str(dst).endswith(".faiss"):
                die()
            real_replace(src, dst)
        collection.os.replace = replace
    coll = Collection.open({path!r})
    x = np.random.default_rng(7).standard_normal((5, 512)).astype("float32")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    coll.add([{{"source_key": f"new{{i}}", "source_path": "/n.wav"}} for i in range(5)], x)
    """
)


@pytest.mark.parametrize("mode,expect_clips", [("before_db_commit", 20), ("after_db_commit", 25)])
def test_crash_mid_commit_recovers_a_consistent_state(tmp_path, mode, expect_clips):
    path = tmp_path / "c"
    filled(path)[0].close()
    script = CRASH.format(repo=str(REPO), mode=mode, path=str(path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert any(".pending" in p.name for p in path.iterdir())  # the crash really left a half-done commit

    ro = Collection.open(path, read_only=True)  # a reader sees the committed state without repairing
    assert ro.index("speech").ntotal == ro.stats()["counts"]["clips"] == expect_clips
    ro.close()
    coll = Collection.open(path, model_id=MODEL)
    assert coll.stats()["counts"]["clips"] == expect_clips
    assert coll.index("speech").ntotal == expect_clips
    assert not any(".pending" in p.name for p in path.iterdir())
    assert json.loads((path / "collection.json").read_text())["generation"] == coll.generation
    coll.add(clips(1, 200), unit(1, 11))  # and it takes writes again
    assert coll.index("speech").ntotal == expect_clips + 1
    coll.close()


def _clustered(n: int, centres: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around `centres` directions: the cluster structure IVF relies on (as embeddings of
    many clips of a few hundred voices and styles have)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((centres, dim))[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_an_approximate_index_replaces_flat_only_when_its_recall_holds():
    from searchengine.store import faiss_index as fi

    ids = np.arange(20_000, dtype=np.int64) + 1
    clustered = _clustered(20_000, 200, 64, 0)
    index, choice = fi.checked_index("IVF512,Flat", clustered, ids, 64)
    assert choice["factory"] == "IVF512,Flat" and choice["recall_at_10"] >= fi.RECALL_TARGET
    assert fi.ivf_of(index).nprobe == choice["nprobe"] and "recall@10" in choice["reason"]
    shapeless = unit(20_000, 1)[:, :256]  # uniform directions: no structure at all
    shapeless /= np.linalg.norm(shapeless, axis=1, keepdims=True)
    index, choice = fi.checked_index("IVF1024,Flat", shapeless, ids, 256)
    assert choice["factory"] == "IDMap2,Flat" and choice["declined"] == "IVF1024,Flat"
    assert choice["declined_at"] == 20_000 and "exact search kept" in choice["reason"]
    assert fi.ivf_of(index) is None and index.ntotal == 20_000
    truth = fi.exact_neighbours(shapeless, ids, np.array([0, 5]), 10)
    _, found = index.search(shapeless[[0, 5]], 11)
    assert [set(t) for t in truth] == [set(f[1:]) for f in found]  # exact: the same neighbours, self first


def test_the_collection_records_why_it_switched_index_type(tmp_path):
    coll = Collection.create(tmp_path / "c", MODEL, DIM, index_factory="IVF16,Flat")
    coll.add(clips(700), unit(700, 6))
    choice = coll.info["indexes"]["speech"]["choice"]
    assert choice["factory"] == "IVF16,Flat" and choice["recall_at_10"] >= 0.95 and choice["reason"]
    coll.close()
    stored = json.loads((tmp_path / "c" / "collection.json").read_text())
    assert stored["indexes"]["speech"]["choice"] == choice


def test_a_declined_switch_stays_exact_and_is_retried_at_twice_the_size(tmp_path, monkeypatch):
    from searchengine.store import faiss_index as fi

    monkeypatch.setattr(fi, "TRAIN_POINTS_PER_LIST", 2)  # trainable from 2,048 vectors, to keep this small
    coll = Collection.create(tmp_path / "c", MODEL, DIM, index_factory="IVF1024,Flat")
    coll.add(clips(3000), unit(3000, 7))  # uniform random: IVF cannot keep the neighbours
    entry = coll.info["indexes"]["speech"]
    assert entry["factory"] == "IDMap2,Flat" and entry["choice"]["declined_at"] == 3000
    coll.add(clips(1000, 3000), unit(1000, 8))
    assert coll.info["indexes"]["speech"]["choice"]["declined_at"] == 3000  # 4,000 < 6,000: not tried
    coll.add(clips(2000, 4000), unit(2000, 9))  # a 2,000-vector segment: too small to train
    assert coll.info["indexes"]["speech"]["choice"]["declined_at"] == 3000
    coll.compact()  # merged into one 6,000-vector segment: tried again, declined again
    assert coll.info["indexes"]["speech"]["choice"]["declined_at"] == 6000
    assert coll.index("speech").ntotal == 6000 and coll.stats()["counts"]["clips"] == 6000
    coll.close()


def test_a_narrow_filter_on_an_ivf_index_is_answered_exactly_over_the_allowed_ids():
    from searchengine.store import faiss_index as fi

    vectors = _clustered(20_000, 200, 64, 2)
    ids = np.arange(20_000, dtype=np.int64) * 2 + 5
    index, choice = fi.checked_index("IVF256,Flat", vectors, ids, 64)
    assert choice["factory"] == "IVF256,Flat"
    rng = np.random.default_rng(3)
    allowed = np.sort(rng.choice(ids, 200, replace=False))  # 1 %: lists would have to be probed widely
    for q in _clustered(5, 200, 64, 4):
        scores, got, used = fi.search_ids(index, q, 10, allowed, excluded={int(allowed[0])})
        keep = allowed[1:]
        truth = keep[np.argsort(-(vectors[(keep - 5) // 2] @ q), kind="stable")[:10]]
        assert used == "exact" and got.tolist() == truth.tolist()
        assert np.all(np.diff(scores) <= 0)
    _, _, used = fi.search_ids(index, vectors[0], 10, allowed, strategy="selector")  # still asked for
    assert used == "selector"
    wide = np.sort(rng.choice(ids, 4000, replace=False))  # 20 %: over-fetching the probed lists
    scores, got, used = fi.search_ids(index, vectors[0], 10, wide)
    assert used == "overfetch" and len(got) == 10 and np.isin(got, wide).all()
