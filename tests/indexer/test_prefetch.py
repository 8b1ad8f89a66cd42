"""The indexer's device path: prefetched batches, bounded queues, pinned host memory.

Everything here runs on CPU. What only a CUDA machine can show (pinned tensors, non-blocking copies,
bf16 autocast, the GPU never idle) is marked skipif-no-CUDA and is checked on a GPU machine.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from indexer.decode import Decoded, process
from indexer.embedding import embed
from indexer.pipeline import LoopTimes, decoded_in_workers, embed_chunks, run_index
from searchengine.manifest import SourceItem, read_source
from searchengine.model.encoder import SpeechTimes, host_batch, length_buckets, prefetched, to_device
from searchengine.store import Collection

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def decoded(corpus: Path) -> list[Decoded]:
    """Eight files of the generated corpus, decoded in this process."""
    items = read_source(corpus / "manifest.jsonl").items[:8]
    out = [process(i) for i in items]
    assert all(isinstance(d, Decoded) for d in out)
    return out


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch"]


def test_prefetched_speech_equals_encoding_batch_by_batch(encoder, decoded):
    """The prefetching path gives bit-identical vectors to preparing and embedding each length bucket
    in turn in this thread (what `encode_speech` did before it prefetched)."""
    waves = [w for d in decoded for w in d.waveforms]
    reference = np.zeros((len(waves), encoder.dim), np.float32)
    with torch.inference_mode():
        for batch in length_buckets([len(w) for w in waves], 4):
            vectors = torch.nn.functional.normalize(encoder._speech_batch([waves[i] for i in batch]).float(), dim=-1)
            reference[batch] = vectors.cpu().numpy()
    times = SpeechTimes()
    for depth in (0, 1, 3):
        got = encoder.encode_speech(waves, 16000, batch_size=4, prefetch=depth, times=times)
        np.testing.assert_array_equal(got, reference)
    assert times.batches == 3 * len(list(length_buckets([len(w) for w in waves], 4)))
    assert 0 <= times.prepare_wait_seconds <= times.seconds
    assert not _prefetch_threads()


def test_pipeline_chunks_equal_direct_embedding(encoder, decoded):
    """Decoded files fed through the prefetch queue embed exactly as the same files embedded directly,
    and the loop reports where its time went."""
    direct = embed(encoder, decoded, [], 240.0)
    times = LoopTimes()
    chunks = list(embed_chunks(iter(decoded), encoder, 240.0, chunk_files=len(decoded), times=times))
    assert len(chunks) == 1
    np.testing.assert_array_equal(chunks[0].speech, direct.speech)
    np.testing.assert_array_equal(chunks[0].caption_vectors, direct.caption_vectors)
    assert chunks[0].captions == direct.captions
    assert times.embed > 0 and times.input_wait >= 0 and times.speech.batches >= 1


def test_run_with_a_decode_worker_stores_the_directly_embedded_vectors(encoder, decoded, corpus, tmp_path):
    """The whole local path (worker process -> drain thread -> prefetched batches -> collection) stores
    the vectors a direct `embed` of the same files gives, and the summary says how long it waited."""
    assert all(len(d.waveforms) == 1 for d in decoded)  # generated clips are < 30 s: one segment each
    manifest = corpus / "prefetch-subset.jsonl"
    manifest.write_text("\n".join((corpus / "manifest.jsonl").read_text().splitlines()[: len(decoded)]) + "\n")
    summary = run_index(manifest, tmp_path / "coll", encoder, workers=1, progress=False, attributes=False)
    assert summary.files_added == len(decoded) and summary.embed_seconds > 0
    line = next(x for x in summary.lines() if "input wait" in x)
    assert "input wait" in line and "decoded files" in line and "featurized batches" in line
    assert summary.input_wait_seconds + summary.prepare_wait_seconds <= summary.wall_seconds
    direct = embed(encoder, decoded, [], 240.0)
    coll = Collection.open(tmp_path / "coll", read_only=True)
    ids = dict(coll.sql("SELECT source_key, id FROM clips").fetchall())
    stored = coll.vectors("speech", [ids[d.item.key] for d in decoded])
    coll.close()
    np.testing.assert_allclose(stored, direct.speech, atol=1e-6, rtol=0)


def test_prefetch_queue_is_bounded():
    """The producer runs at most `depth` items ahead of the consumer (plus the one in its hands)."""
    produced = []

    def numbers():
        for i in range(1000):
            produced.append(i)
            yield i

    depth = 3
    it = prefetched(numbers(), depth)
    assert next(it) == 0
    deadline = time.monotonic() + 10
    while len(produced) < 1 + depth + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # give an unbounded producer the chance to run further
    assert len(produced) == 1 + depth + 1
    assert [next(it) for _ in range(3)] == [1, 2, 3]
    it.close()  # stopping early stops the producer
    assert not _prefetch_threads()
    assert len(produced) < 1000


def test_prefetch_reraises_the_producers_exception_in_order():
    def items():
        yield 1
        yield 2
        raise RuntimeError("broken producer")

    got = []
    with pytest.raises(RuntimeError, match="broken producer"):
        for x in prefetched(items(), 1):
            got.append(x)
    assert got == [1, 2]
    assert not _prefetch_threads()


def test_worker_exception_reaches_the_indexer_after_the_files_before_it(encoder, decoded):
    """A bad *file* is a `Failed` record (the errors table; see test_indexer). An exception inside a
    decode worker process is a bug, and it must surface through the drain thread, not hang or vanish."""
    good = [d.item for d in decoded[:2]]
    broken = SourceItem(key="broken", path=None)  # os.stat(None): TypeError in the worker
    chunks = embed_chunks(decoded_in_workers([*good, broken], workers=1), encoder, 240.0, chunk_files=1)
    first = [next(chunks), next(chunks)]
    assert [c.decoded[0].item.key for c in first] == [i.key for i in good]
    with pytest.raises(TypeError):
        next(chunks)
    assert not _prefetch_threads()


def test_host_batch_pins_only_for_cuda():
    """Without CUDA (or for a CPU device) batches stay as they are: pinning needs CUDA."""
    batch = {"frames": torch.zeros(2, 5, 3), "lengths": torch.tensor([5, 3]), "note": "kept"}
    same = host_batch(batch, "cpu")
    assert same["frames"] is batch["frames"] and not same["frames"].is_pinned()
    moved = to_device(same, torch.device("cpu"))
    assert moved["frames"] is batch["frames"] and moved["note"] == "kept"
    if not CUDA:
        assert not host_batch(batch, "cuda")["frames"].is_pinned()


@pytest.mark.skipif(not CUDA, reason="pinned memory needs CUDA; checked on a GPU machine")
def test_host_batch_is_pinned_and_copied_without_blocking_on_cuda():
    """On a GPU machine: tensors bound for CUDA are pinned, and arrive intact on the device."""
    batch = {"frames": torch.randn(2, 5, 3), "lengths": torch.tensor([5, 3])}
    pinned = host_batch(batch, "cuda")
    assert all(v.is_pinned() for v in pinned.values())
    on_device = to_device(pinned, "cuda")
    torch.cuda.synchronize()
    assert on_device["frames"].is_cuda
    assert torch.equal(on_device["frames"].cpu(), batch["frames"])


def test_caption_time_is_counted_apart_from_speech(encoder, decoded):
    """A captioned chunk reports its caption seconds; the loop adds them up for the run's summary."""
    assert any(d.item.global_caption or d.item.fine_captions for d in decoded)
    times = LoopTimes()
    chunks = list(embed_chunks(iter(decoded), encoder, 240.0, chunk_files=len(decoded), times=times))
    assert chunks[0].caption_seconds > 0 and times.captions == chunks[0].caption_seconds
    assert times.captions < times.embed


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_default_workers_follow_the_cores_this_process_may_use():
    """With attributes every allowed core gets a decoding worker (measuring is the bound); without,
    one core is left to the model. The count is the affinity set (a container's or taskset's limit),
    lowered to a cgroup CPU quota where one is set."""
    from indexer.cli import default_workers
    from searchengine.cores import available_cores, cgroup_cpu_quota

    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(allowed)})
        assert available_cores() == 1
        assert default_workers(attributes=True) == 1 and default_workers(attributes=False) == 1
        os.sched_setaffinity(0, allowed)
        assert available_cores() == min(len(allowed), cgroup_cpu_quota() or len(allowed))
        assert default_workers(attributes=True) == min(8, available_cores())
        assert default_workers(attributes=False) == max(1, min(8, available_cores() - 1))
    finally:
        os.sched_setaffinity(0, allowed)


def test_pace_line_names_the_busy_workers_largest_stage_and_not_an_idle_pools_start_up():
    """The model waited 80 % of a 100 s run. With its worker measuring for 95 s, the line names DNSMOS
    and what would help; with the worker busy for 1 s (start-up, not work, made the wait), none."""
    from indexer.pipeline import Summary

    busy = Summary("src", "coll", "m", wall_seconds=100.0, input_wait_seconds=80.0, embed_seconds=15.0, workers=1,
                   worker_seconds={"decode": 0.5, "DNSMOS": 76.0, "speaker": 14.0, "pitch": 4.5})
    line = busy.pace_line()
    assert "DNSMOS took 80 % of their time" in line
    from searchengine.cores import available_cores

    assert ("--workers" in line) == (available_cores() > 1)
    assert line in busy.lines()
    idle = Summary("src", "coll", "m", wall_seconds=100.0, input_wait_seconds=80.0, embed_seconds=15.0, workers=1,
                   worker_seconds={"decode": 1.0})
    assert idle.pace_line() == "" and not any("pace" in x for x in idle.lines())
    featurizing = Summary("src", "coll", "m", wall_seconds=100.0, input_wait_seconds=5.0, prepare_wait_seconds=75.0,
                          embed_seconds=90.0, workers=1, worker_seconds={"decode": 0.5, "DNSMOS": 76.0})
    assert featurizing.pace_line() == ""  # the model waited on this process's own featurizing, not the workers
    in_process = Summary("src", "coll", "m", wall_seconds=100.0, input_wait_seconds=80.0, embed_seconds=15.0,
                         workers=0, worker_seconds={"decode": 0.5, "DNSMOS": 76.0})
    assert "pace set by decoding in this process: DNSMOS" in in_process.pace_line()
    assert "time in decoding in this process" not in "\n".join(in_process.lines())


def _record_pid(path: str) -> None:
    with open(path, "a") as out:
        out.write(f"{os.getpid()}\n")


def _collecting_first(item: SourceItem, attributes: bool = False):
    """`process` in a worker whose collector runs before it decodes, as a real worker's does as soon as
    its allocations say so."""
    import gc

    gc.collect()
    return process(item, attributes=attributes)


def test_garbage_is_destroyed_here_not_in_a_worker(corpus, tmp_path, monkeypatch):
    """An unreachable cycle holding a DuckDB connection, left in this process's heap when the decode
    workers fork, is destroyed here, where DuckDB's threads are. Destroyed in a worker (whose copy of
    the heap has none of them), its destructor joined threads that did not exist and the worker
    segfaulted. The pipeline collects before forking and freezes the heap while forking; the freeze is
    what still keeps the garbage from the workers when that collection does nothing because another
    thread is mid-collection (CPython's gc.collect then returns at once), which the first version of
    this test, asserting the collection alone, met in CI. The collector is off here, so nothing but the
    pipeline and the workers' own collections can reach the cycle during the call."""
    import gc
    import weakref

    import duckdb

    monkeypatch.setattr("indexer.pipeline.process", _collecting_first)
    record = tmp_path / "finalized_in"
    items = read_source(corpus / "manifest.jsonl").items[:2]

    class Holder:
        pass

    gc.disable()
    try:
        held = Holder()
        held.cycle, held.con = held, duckdb.connect()
        held.con.execute("SELECT 1").fetchall()
        weakref.finalize(held, _record_pid, str(record))
        del held
        results = list(decoded_in_workers(items, 1))
    finally:
        gc.enable()
    assert [type(r).__name__ for r in results] == ["Decoded", "Decoded"]
    for _ in range(50):  # a collection running in another thread makes gc.collect a no-op for a moment
        if record.exists():
            break
        gc.collect()
        time.sleep(0.1)
    assert record.read_text().split() == [str(os.getpid())]


def test_a_cgroup_cpu_quota_lowers_the_core_count(tmp_path):
    """`docker --cpus 1.5` writes "150000 100000" to cgroup v2's cpu.max (v1: cfs quota and period
    files): 2 cores' worth of workers, not the host's count."""
    from searchengine.cores import cgroup_cpu_quota

    v2 = tmp_path / "v2"
    v2.mkdir()
    for text, cores in (("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1),
                        ("max 100000\n", None), ("nonsense\n", None)):
        (v2 / "cpu.max").write_text(text)
        assert cgroup_cpu_quota(str(v2)) == cores, text
    v1 = tmp_path / "v1" / "cpu,cpuacct"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    for quota, cores in (("300000", 3), ("-1", None)):
        (v1 / "cpu.cfs_quota_us").write_text(quota + "\n")
        assert cgroup_cpu_quota(str(tmp_path / "v1")) == cores, quota
    assert cgroup_cpu_quota(str(tmp_path / "absent")) is None


def test_a_callers_gc_freeze_outlives_the_workers_start(corpus):
    """A host process that froze its heap before indexing (a pre-forking server does) keeps it frozen:
    the pipeline thaws only a freeze of its own."""
    import gc

    items = read_source(corpus / "manifest.jsonl").items[:1]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert [type(r).__name__ for r in decoded_in_workers(items, 1)] == ["Decoded"]
        # A thaw empties the permanent generation (0); kept, it holds about what was frozen (objects freed
        # by reference counting meanwhile leave it, so not exactly).
        assert frozen > 0 and gc.get_freeze_count() > frozen // 2
    finally:
        gc.unfreeze()
