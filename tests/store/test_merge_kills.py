"""kill -9 at random moments of a merge loses no committed clip and stores none twice.

The kill points of `CLSP_SEARCH_KILL_AT` are tested in test_segments.py; here a process that merges
(`Collection.compact`, or commits that set off the automatic merge) is SIGKILLed from outside after a
random delay drawn across what an uninterrupted run takes, so kills land wherever the work happens to
be: loading, building the merged segment, writing it, inside DuckDB's commit, renaming, removing old
files, rewriting collection.json, checkpointing. After each kill a writer's `Collection.open` recovers
and the collection must be whole: every live id once in its kind (speech ids = clip rows, caption
ids = caption rows), deleted ids never answering, every stored vector finding itself, no file left
behind, `check.problems` empty.

Children come from a fork server (multiprocessing's "forkserver": a fresh interpreter that imports the
store once and forks a clean child per run). Forking this process would copy whatever OpenMP and DuckDB
threads earlier tests started, which a child cannot use; starting an interpreter per kill costs a second.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from searchengine.store import CAPTION_KINDS, Caption, Collection
from searchengine.store.check import problems

DIM = 64
MODEL = "kill-model@000000000000"
BASE_COMMITS = 20
BASE_CLIPS = 2_500
"""20 commits of 2,500 clips (each with a global and a fine caption) at 64-d: about 50k vectors per
kind, so that one compact takes a few hundred ms and random kills spread over its steps."""
COMPACT_KILLS = 12
EXTRA_KILLS = 8
"""Kills aimed at the end of the run when none of the first COMPACT_KILLS landed after the commit."""
NEW_COMMITS = 9
NEW_CLIPS = 200
"""The indexing child's commits: on top of the small base's 3 segments the 5th sets off an automatic
merge of 8 segments, and later ones add segments again."""
INDEX_KILLS = 6
SAMPLE = 8
"""Live and deleted vectors per kind searched after each kill (each search visits every segment)."""
SEED = 20261206
BATCH_SEED = 7_000
"""The indexing child's batch b draws from seed BATCH_SEED + b, apart from the seeds the bases use."""


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clips(prefix: str, n: int) -> list[dict]:
    return [{"source_key": f"{prefix}.{i}", "source_path": f"/a/{prefix}.{i}.wav", "duration": 1.0} for i in range(n)]


def _captions(n: int) -> list[Caption]:
    return [Caption(i, "global", "g") for i in range(n)] + [Caption(i, "fine", "f") for i in range(n)]


_COMPACT = """
from searchengine.store import Collection
coll = Collection.open(PATH)
coll.compact()
coll.close()
"""

_INDEX = """
import numpy as np
from searchengine.store import Caption, Collection
coll = Collection.open(PATH)
for b in range(COMMITS):
    rng = np.random.default_rng(SEED + b)
    x = rng.standard_normal((3 * N, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    clips = [{"source_key": f"{PREFIX}.{b}.{i}", "source_path": f"/a/{PREFIX}.{b}.{i}.wav", "duration": 1.0}
             for i in range(N)]
    caps = [Caption(i, "global", "g") for i in range(N)] + [Caption(i, "fine", "f") for i in range(N)]
    coll.add(clips, x[:N], caps, x[N:])
coll.close()
"""
"""The indexing child: `COMMITS` commits of `N` clips with their captions, automatic merge on. Batch
`b`'s vectors come from seed `SEED + b` (BATCH_SEED + b), so the test knows what each clip must find."""


def _batch_vectors(seed: int, n: int) -> np.ndarray:
    """What the indexing child adds in one batch: speech rows [0, n), global [n, 2n), fine [2n, 3n)."""
    x = np.random.default_rng(seed).standard_normal((3 * n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def forkserver():
    """A multiprocessing context whose children are forked from a clean interpreter that imported the store."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "searchengine.store"])
    _timed(ctx, "pass")  # started (and its imports paid) before any run is timed
    return ctx


def _run(ctx, code: str, **names) -> multiprocessing.Process:
    proc = ctx.Process(target=exec, args=(code, dict(names)), daemon=True)
    proc.start()
    return proc


def _timed(ctx, code: str, **names) -> float:
    """Seconds one uninterrupted child takes, start to exit."""
    began = time.perf_counter()
    proc = _run(ctx, code, **names)
    proc.join(120)
    assert proc.exitcode == 0, f"the child failed uninterrupted (exit code {proc.exitcode})"
    return time.perf_counter() - began


def _kill_after(ctx, delay: float, code: str, **names) -> bool:
    """Start a child and SIGKILL it after `delay` s; True when the kill landed (False: it had finished)."""
    proc = _run(ctx, code, **names)
    proc.join(delay)
    finished = proc.exitcode is not None
    if not finished:
        proc.kill()
    proc.join(60)
    assert proc.exitcode in (0, -9), f"the child failed on its own (exit code {proc.exitcode})"
    return not finished and proc.exitcode == -9


def _delays(rng: np.random.Generator, n: int, span: float) -> np.ndarray:
    """`n` random delays in [0, span), shuffled, one in each of `n` slices of equal probability under a
    density rising linearly to the end: spread over the whole run, yet denser late, where the merged
    segment is written and committed and the old files are removed (opening comes first)."""
    return rng.permutation(np.sqrt((np.arange(n) + rng.random(n)) / n) * span)


def _copy(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def _live(coll: Collection, kind: str) -> np.ndarray:
    """Live ids of `kind` over all its segments, as stored (a duplicate stays a duplicate)."""
    return np.concatenate([np.zeros(0, np.int64)] + [s.live_ids() for s in coll.index(kind).segments])


def _assert_whole(coll: Collection, path: Path, expected: dict[str, np.ndarray], vectors: dict[str, dict[int, np.ndarray]],
                  deleted: dict[str, np.ndarray], what: str) -> None:
    """The recovered collection holds exactly the expected live ids, each once, and answers with them."""
    assert problems(coll) == [], what
    rows = {"speech": coll.sql("SELECT id FROM clips").fetchnumpy()["id"]}
    for kind in CAPTION_KINDS:
        rows[kind] = coll.sql("SELECT id FROM captions WHERE kind = ?", [kind]).fetchnumpy()["id"]
    for kind, want in expected.items():
        live = _live(coll, kind)
        count = Counter(live.tolist())
        twice = [i for i, c in count.items() if c > 1]
        assert not twice, f"{what}: {kind} ids stored live more than once: {twice[:5]}"
        assert np.array_equal(np.sort(live), np.sort(want)), (
            f"{what}: {kind} lost {len(np.setdiff1d(want, live))} ids, gained {len(np.setdiff1d(live, want))}")
        assert np.array_equal(np.sort(rows[kind].astype(np.int64)), np.sort(want)), f"{what}: {kind} rows differ"
        sample = np.array(sorted(vectors[kind]), np.int64)
        own = np.stack([vectors[kind][int(i)] for i in sample])
        scores, found = coll.search(kind, own, 5)
        assert (found[:, 0] == sample).all(), f"{what}: {kind} vectors do not find themselves"
        assert np.allclose(scores[:, 0], 1.0, atol=1e-4), what
        assert np.allclose(coll.vectors(kind, sample), own, atol=1e-6), f"{what}: {kind} vectors changed"
        if len(deleted.get(kind, ())):
            gone = np.array(sorted(vectors[kind + "-deleted"]), np.int64)
            _, found = coll.search(kind, np.stack([vectors[kind + "-deleted"][int(i)] for i in gone]), 10)
            assert not np.isin(found, deleted[kind]).any(), f"{what}: deleted {kind} ids answer a search"
    listed = {f for files in coll.info["segments"].values() for f in files}
    left = {p.name for p in path.iterdir() if ".faiss" in p.name}
    assert left == listed, f"{what}: files no generation lists: {sorted(left - listed)}"
    assert json.loads((path / "collection.json").read_text())["generation"] == coll.generation, what


def _state(path: Path) -> tuple[int, bool]:
    """collection.json's generation and whether a pending segment file is on disk (read before opening)."""
    gen = int(json.loads((path / "collection.json").read_text())["generation"])
    return gen, any(p.name.endswith(".pending") for p in path.iterdir())


def _build_base(path: Path, rng: np.random.Generator, commits: int, clips: int):
    """Many segments with tombstones: clips deleted (with their captions) and captions deleted alone.
    Returns what must stay live per kind, a sample of live and deleted vectors per kind, deleted ids."""
    coll = Collection.create(path, MODEL, DIM)
    coll.auto_merge = False
    stored: dict[str, dict[int, np.ndarray]] = {k: {} for k in ("speech", *CAPTION_KINDS)}
    for g in range(commits):
        x = _unit(rng, 3 * clips)
        with coll.transaction() as tx:
            ids = tx.add(_clips(f"b{g}", clips), x[:clips], _captions(clips), x[clips:])
        caps = coll.sql("SELECT id, kind FROM captions WHERE clip_id >= ? ORDER BY id", [int(ids[0])]).fetchall()
        stored["speech"].update(zip(ids.tolist(), x[:clips], strict=True))
        cap_rows = {"global": x[clips:2 * clips], "fine": x[2 * clips:]}
        for kind in CAPTION_KINDS:
            cap_ids = [c for c, k in caps if k == kind]
            stored[kind].update(zip(cap_ids, cap_rows[kind], strict=True))
        if g % 3 == 2:  # tombstones in older segments: some over TOMBSTONES_AS_EXCLUDED_MAX per segment
            live = coll.sql("SELECT id FROM clips").fetchnumpy()["id"]
            with coll.transaction() as tx:
                tx.delete(rng.choice(live, clips // 5, replace=False).tolist())
                fine = tx.con.execute("SELECT id FROM captions WHERE kind = 'fine'").fetchnumpy()["id"]
                tx.delete_captions(rng.choice(fine, clips // 20, replace=False).tolist())
    expected = {"speech": np.sort(coll.sql("SELECT id FROM clips").fetchnumpy()["id"].astype(np.int64))}
    for kind in CAPTION_KINDS:
        expected[kind] = np.sort(
            coll.sql("SELECT id FROM captions WHERE kind = ?", [kind]).fetchnumpy()["id"].astype(np.int64))
    deleted = {k: np.setdiff1d(np.array(sorted(stored[k]), np.int64), expected[k]) for k in expected}
    vectors: dict[str, dict[int, np.ndarray]] = {}
    for kind in expected:
        vectors[kind] = {int(i): stored[kind][int(i)] for i in rng.choice(expected[kind], SAMPLE, replace=False)}
        vectors[kind + "-deleted"] = {int(i): stored[kind][int(i)] for i in rng.choice(deleted[kind], SAMPLE, replace=False)}
    segments = len(coll.info["segments"]["speech"])
    coll.close()
    return expected, vectors, deleted, segments


def test_random_kills_during_compact_lose_and_duplicate_nothing(tmp_path, forkserver):
    rng = np.random.default_rng(SEED)
    base = tmp_path / "base"
    expected, vectors, deleted, segments = _build_base(base, rng, BASE_COMMITS, BASE_CLIPS)
    assert segments == BASE_COMMITS and len(deleted["speech"]) and len(deleted["fine"]) > len(deleted["global"])
    before = Collection.open(base, read_only=True)
    start_gen, old_files = before.generation, {k: list(v) for k, v in before.info["segments"].items()}
    before.close()

    work = tmp_path / "work"
    span = _timed(forkserver, _COMPACT, PATH=str(_copy(base, work)))
    after = Collection.open(work)  # the uninterrupted compact: one segment per kind, same live ids
    assert after.generation > start_gen and all(len(after.info["segments"][k]) == 1 for k in expected)
    _assert_whole(after, work, expected, vectors, deleted, "uninterrupted compact")
    after.close()

    def kill_at(n: int, delay: float) -> str:
        _copy(base, work)
        killed = _kill_after(forkserver, delay, _COMPACT, PATH=str(work))
        info_gen, pending = _state(work)
        coll = Collection.open(work)  # the writer's open: rolls forward or back
        if not killed:
            outcome = "finished before the kill"
        elif coll.generation == start_gen:
            outcome = "kept the old generation" + (", pending files removed" if pending else "")
        elif info_gen < coll.generation:
            outcome = "merged, rolled forward on open"
        else:
            outcome = "merged, collection.json written"
        what = f"kill {n} after {delay * 1000:.0f} ms ({outcome})"
        for kind in expected:  # each kind: its old segments untouched, or one merged segment
            files = coll.info["segments"][kind]
            assert files == old_files[kind] or (len(files) == 1 and files[0] not in old_files[kind]), what
        _assert_whole(coll, work, expected, vectors, deleted, what)
        coll.close()
        return outcome

    outcomes: dict[float, str] = {}
    for n, share in enumerate(_delays(rng, COMPACT_KILLS, 1.0)):
        # A run that finished before its kill shows the runs are quicker now than the one timed.
        delay = float(share) * min([span] + [d for d, o in outcomes.items() if o.startswith("finished")])
        outcomes[delay] = kill_at(n, delay)
    # The merge's commit comes late in the run, so a few kills may all land before it: aim more
    # between the latest kill that kept the old generation and the earliest one that came too late.
    for n in range(COMPACT_KILLS, COMPACT_KILLS + EXTRA_KILLS):
        if any(o.startswith("merged") for o in outcomes.values()):
            break
        lo = max([d for d, o in outcomes.items() if o.startswith("kept")], default=0.0)
        hi = min([d for d, o in outcomes.items() if o.startswith("finished")], default=1.5 * span)
        delay = float(rng.uniform(min(lo, hi), max(lo, hi)))
        outcomes[delay] = kill_at(n, delay)

    coll = Collection.open(work)  # the last recovered collection still compacts, and stays whole
    coll.compact()
    _assert_whole(coll, work, expected, vectors, deleted, "compact after the kills")
    coll.close()
    tally = Counter(outcomes.values())
    print(f"compact of {segments} segments, {span * 1000:.0f} ms uninterrupted; {len(outcomes)} kills: {dict(tally)}")
    assert any(o.startswith("kept") for o in tally) and any(o.startswith("merged") for o in tally), (
        f"no kill landed on one side of the merge's commit: {dict(tally)}")


def test_random_kills_while_indexing_with_automatic_merges(tmp_path, forkserver):
    rng = np.random.default_rng(SEED + 1)
    base = tmp_path / "base"
    expected, vectors, deleted, segments = _build_base(base, rng, 3, 300)
    work = tmp_path / "work"
    names = {"PREFIX": "n", "COMMITS": NEW_COMMITS, "N": NEW_CLIPS, "SEED": BATCH_SEED, "DIM": DIM}
    span = _timed(forkserver, _INDEX, PATH=str(_copy(base, work)), **names)
    done = Collection.open(work)
    speech = done.info["segments"]["speech"]
    assert len(speech) < segments + NEW_COMMITS, "the indexing child's commits set off no automatic merge"
    done.close()

    outcomes: Counter[str] = Counter()
    for n, delay in enumerate(_delays(rng, INDEX_KILLS, span)):
        _copy(base, work)
        killed = _kill_after(forkserver, float(delay), _INDEX, PATH=str(work), **names)
        coll = Collection.open(work)
        what = f"indexing kill {n} after {delay * 1000:.0f} ms"
        keys = coll.sql("SELECT source_key, id FROM clips WHERE source_key LIKE 'n.%'").fetchall()
        batches = Counter(int(k.split(".")[1]) for k, _ in keys)
        assert all(c == NEW_CLIPS for c in batches.values()), f"{what}: a commit was kept in part: {batches}"
        committed = len(batches)
        assert sorted(batches) == list(range(committed)), f"{what}: commits kept out of order: {sorted(batches)}"
        assert committed == NEW_COMMITS or killed, what
        want = dict(expected)
        sample = {k: dict(v) for k, v in vectors.items()}
        by_key = dict(keys)
        for b in range(committed):
            x = _batch_vectors(BATCH_SEED + b, NEW_CLIPS)
            ids = np.array([by_key[f"n.{b}.{i}"] for i in range(NEW_CLIPS)], np.int64)
            want["speech"] = np.concatenate([want["speech"], ids])
            for i in (0, NEW_CLIPS - 1):
                sample["speech"][int(ids[i])] = x[i]
            for j, kind in enumerate(CAPTION_KINDS):
                cap = coll.sql("SELECT c.id, k.source_key FROM captions c JOIN clips k ON c.clip_id = k.id"
                               " WHERE c.kind = ? AND k.source_key LIKE ?", [kind, f"n.{b}.%"]).fetchall()
                assert len(cap) == NEW_CLIPS, f"{what}: batch {b} has {len(cap)} {kind} captions"
                want[kind] = np.concatenate([want[kind], np.array([c for c, _ in cap], np.int64)])
                for cid, key in cap[:2]:
                    sample[kind][int(cid)] = x[(j + 1) * NEW_CLIPS + int(key.split(".")[2])]
        merged = len(coll.info["segments"]["speech"]) < segments + committed
        outcomes[f"{committed} commits kept, {'merged' if merged else 'not merged'}"] += 1
        _assert_whole(coll, work, want, sample, deleted, f"{what} ({committed} commits kept)")
        coll.close()
    print(f"indexing {NEW_COMMITS} commits, {span * 1000:.0f} ms uninterrupted; kills: {dict(outcomes)}")
