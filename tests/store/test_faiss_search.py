"""Filtered FAISS search as plain functions over arrays (searchengine.store.faiss_index): no DuckDB,
no collection, so what each helper promises is checked against brute force on its own."""

from __future__ import annotations

import numpy as np

from searchengine.store import faiss_index as fi

DIM = 16


def _index(n: int, seed: int = 0) -> tuple[object, np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)
    index = fi.new_index("Flat", DIM)
    fi.add(index, x, ids)
    return index, x, ids


def test_selector_and_overfetch_return_the_brute_force_answer() -> None:
    index, x, ids = _index(500)
    q = x[7]
    allowed = ids[::5]
    truth = allowed[np.argsort(-(x[::5] @ q), kind="stable")][:12]
    for strategy, expected in (("selector", "selector"), ("overfetch", "overfetch"), ("auto", "selector")):
        scores, found, used = fi.search_ids(index, q, 12, allowed, strategy=strategy)
        assert used == expected and found.tolist() == truth.tolist()
        assert np.all(np.diff(scores) <= 1e-6)
    _, found, used = fi.search_ids(index, q, 5, None, excluded={int(ids[7])})
    assert used == "none" and int(ids[7]) not in found.tolist() and len(found) == 5


def test_search_groups_keeps_each_groups_best_vector() -> None:
    index, x, ids = _index(300, seed=1)
    owner = {int(i): int(i) % 37 for i in ids}  # 300 vectors in 37 groups: several per group
    q = x[3]
    calls: list[int] = []

    def group_of(found: np.ndarray) -> dict[int, int]:
        calls.append(len(found))
        return {int(i): owner[int(i)] for i in found}

    best, used = fi.search_groups(index, q, 10, group_of, excluded={owner[int(ids[3])]}, per_group=1.0)
    scores = x @ q
    truth: dict[int, tuple[float, int]] = {}
    for k in np.argsort(-scores, kind="stable"):
        g = owner[int(ids[k])]
        if g != owner[int(ids[3])] and g not in truth:
            truth[g] = (float(scores[k]), int(ids[k]))
    assert list(best) == list(truth)[:10] and used == "none"
    assert all(best[g][1] == truth[g][1] for g in best)
    assert len(calls) >= 2 and calls[0] == 10  # asked for n * per_group first, then doubled


def test_search_groups_stops_when_the_index_is_exhausted() -> None:
    index, x, ids = _index(20, seed=2)
    best, used = fi.search_groups(index, x[0], 50, lambda found: {int(i): 1 for i in found}, allowed=ids[:4])
    assert list(best) == [1] and used == "selector"


def test_a_batch_of_queries_takes_blas_and_answers_as_one_query_at_a_time() -> None:
    """Batches of 3 or more 512-d queries go through BLAS (FAISS 1.15 would loop until 250), and
    their answers equal those of the same queries asked one by one (FAISS's own loop)."""
    import faiss

    assert faiss.cvar.distance_compute_blas_threshold == fi.BLAS_THRESHOLD == 3 * 512
    x = np.random.default_rng(5).standard_normal((4000, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = fi.new_index("IDMap2,Flat", 512)
    fi.add(index, x, np.arange(4000, dtype=np.int64))
    queries = x[:40] + 0.05 * x[40:80]
    scores, found = index.search(queries, 10)
    one_by_one = [index.search(q[None], 10) for q in queries]
    assert found.tolist() == [f[0].tolist() for _, f in one_by_one]
    assert np.allclose(scores, np.vstack([s for s, _ in one_by_one]), atol=1e-5)
