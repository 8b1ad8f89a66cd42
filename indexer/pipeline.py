"""An indexing run: plan what changed, decode in workers, embed in length-bucketed batches, commit often.

Data flows one way: `plan` (what is new, changed, gone) -> `decoded_in_workers` (worker processes)
-> `embed_chunks` (the model, in the main process) -> `run_index`'s write loop (one collection
transaction every `commit_every` files). The Ray backend replaces the middle two steps and feeds
the same write loop, so both paths store identical rows: both embed through `indexer.embedding`,
and this module imports the Ray backend (lazily), never the reverse.

Overlap: a background thread drains the workers' results into a bounded queue (`prefetched`, one
chunk deep), so the workers keep decoding while the main process embeds the previous chunk and
writes it; inside `encode_speech` another thread featurizes and pins the next length bucket while
the device embeds the current one. `LoopTimes` records how long the embedding loop sat waiting for
either kind of input: near zero means decoding and featurizing keep up and the model (on CUDA, the
GPU) sets the pace.

Resumability comes from the store: a commit is atomic, and the plan skips every key already stored
with the same file size+mtime (or, when those changed, the same content hash). A run killed at any
moment therefore redoes at most the files since its last commit, and never duplicates a row.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.decode import Decoded, Failed, process
from indexer.describe import describe
from indexer.embedding import Chunk, embed, speaker_rows
from searchengine.attributes import COLUMNS as ATTRIBUTE_COLUMNS
from searchengine.audio import file_hash
from searchengine.cores import available_cores
from searchengine.manifest import Source, SourceItem, read_source
from searchengine.model.encoder import DEFAULT_PREFETCH, SpeechTimes, prefetched, timed
from searchengine.progress import progress_bar
from searchengine.sources.extract import extract_embedded
from searchengine.store import Caption, Collection

DEFAULT_COMMIT_EVERY = 2000
"""Files per commit: few enough that a crash loses minutes, not hours; many enough that rewriting the
index files (O(collection size) per commit) stays a small share of the run."""


@dataclass
class Plan:
    """What a run has to do, decided before any audio is decoded."""

    todo: list[SourceItem]
    replaced: dict[str, list[int]]  # key -> clip ids of the previous version, deleted when the new one lands
    unchanged: int
    known_bad: int
    missing_keys: list[str]
    missing_ids: list[int]


@dataclass
class LoopTimes:
    """Where the embedding loop's time went, in seconds of the main process's wall time."""

    input_wait: float = 0.0  # waiting for the next decoded file from the workers
    embed: float = 0.0  # embedding speech and captions, including `speech.prepare_wait_seconds`
    captions: float = 0.0  # of `embed`: embedding the captions
    speech: SpeechTimes = field(default_factory=SpeechTimes)


@dataclass
class Summary:
    """What a run did; printed at the end and stored in `runs`."""

    source: str
    collection: str
    model_id: str
    files_total: int = 0
    files_added: int = 0
    files_unchanged: int = 0
    files_failed: int = 0
    files_known_bad: int = 0
    #: Files the folder scan passed over, (path, reason): not audio by their extension.
    scan_skipped: list[tuple[str, str]] = field(default_factory=list)
    clips_added: int = 0
    clips_deleted: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    captions_generated: int = 0
    input_wait_seconds: float = 0.0  # embedding loop idle, waiting for decoded files
    prepare_wait_seconds: float = 0.0  # ... waiting for featurized speech batches (inside embedding)
    embed_seconds: float = 0.0  # embedding speech and captions (0: not measured, e.g. the Ray backend)
    caption_seconds: float = 0.0  # ... of which embedding captions
    write_seconds: float = 0.0  # staging chunks and committing them
    describe_seconds: float = 0.0  # binning measurements into words and captions (with attributes)
    workers: int = 0  # decoding processes (0: decoded in the main process)
    #: Worker seconds by stage, summed over the run's decoded files (decode, level, pitch, DNSMOS,
    #: speaker); a file that failed to decode adds nothing, so its time is missing here.
    worker_seconds: dict[str, float] = field(default_factory=dict)
    #: How a stage ran, where that depends on the machine ({"DNSMOS": {"openvino bf16"}}).
    worker_runtimes: dict[str, set[str]] = field(default_factory=dict)
    #: How this process embedded speech and captions ("torch cpu float32", "openvino bf16"; "": none
    #: embedded here, or not known, as on Ray's actors).
    speech_runtime: str = ""
    caption_runtime: str = ""

    def runtimes(self) -> dict[str, Any]:
        """How each machine-dependent stage computed its numbers, as stored in `runs.runtimes`: the
        same corpus indexed on another machine may give slightly different vectors and scores."""
        done = {"speech": self.speech_runtime, "captions": self.caption_runtime}
        return {**{k: v for k, v in done.items() if v},
                **{k: sorted(v) for k, v in sorted(self.worker_runtimes.items()) if v}}

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def lines(self) -> list[str]:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"
        return [
            f"Indexed {self.source} into {self.collection} with {self.model_id}",
            f"  files: {self.files_total} in source, {self.files_added} added, {self.files_unchanged} unchanged, "
            f"{self.files_failed} failed, {self.files_known_bad} skipped as known bad",
            f"  clips: +{self.clips_added} -{self.clips_deleted}; audio {self.audio_seconds / 3600:.2f} h in "
            f"{self.wall_seconds:.1f} s ({self.realtime_factor:.1f}x real time)",
            f"  failures by reason: {reasons}",
            *([self.scan_skipped_line()] if self.scan_skipped else []),
            *([f"  generated captions (re)written: {self.captions_generated}"] if self.captions_generated else []),
            *([self.wait_line()] if self.embed_seconds else []),
            *(self.time_lines() if self.embed_seconds else []),
        ]

    def scan_skipped_line(self) -> str:
        """How many files the folder scan passed over, by extension, with a few of them named."""
        by_suffix: dict[str, int] = {}
        for path, _ in self.scan_skipped:
            suffix = Path(path).suffix.lower() or "(none)"
            by_suffix[suffix] = by_suffix.get(suffix, 0) + 1
        counts = ", ".join(f"{suffix} {n}" for suffix, n in sorted(by_suffix.items(), key=lambda kv: (-kv[1], kv[0])))
        examples = ", ".join(Path(path).name for path, _ in self.scan_skipped[:3])
        return (f"  not audio by extension, skipped: {len(self.scan_skipped)} ({counts}; e.g. {examples}); "
                "convert them or list them in a manifest if they hold sound")

    def wait_line(self) -> str:
        """How long embedding waited for input: the figure that says whether decoding keeps up."""
        waited = self.input_wait_seconds + self.prepare_wait_seconds
        share = waited / self.wall_seconds * 100 if self.wall_seconds else 0.0
        return (f"  embedding: {self.embed_seconds - self.prepare_wait_seconds:.1f} s computing; input wait "
                f"{self.input_wait_seconds:.1f} s for decoded files + {self.prepare_wait_seconds:.1f} s for "
                f"featurized batches ({share:.0f} % of wall time)")

    def time_lines(self) -> list[str]:
        """Where the run's time went, on both sides of the worker queue, and which side set the pace.

        Worker seconds are summed over processes (CPU-ish time, comparable to the wall time times the
        number of workers); this process's figures are wall seconds."""
        stages = ", ".join(f"{k} {v:.1f}" + (f" ({' and '.join(sorted(self.worker_runtimes[k]))})"
                                              if self.worker_runtimes.get(k) else "")
                           for k, v in sorted(self.worker_seconds.items(), key=lambda kv: -kv[1]))
        where = (f"time in {self.workers} worker process{'es' if self.workers != 1 else ''}, s summed"
                 if self.workers else "time decoding in this process, s")
        speech = self.embed_seconds - self.caption_seconds - self.prepare_wait_seconds
        captions = f"captions {self.caption_seconds:.1f}" + (
            f" ({self.caption_runtime})" if self.caption_runtime and self.caption_seconds else "")
        lines = [f"  {where}: {stages or 'none'}",
                 f"  time in this process, s: speech {speech:.1f}, {captions}, writing {self.write_seconds:.1f}"
                 + (f", describing {self.describe_seconds:.1f}" if self.describe_seconds else "")]
        bound = self.pace_line()
        return lines + ([bound] if bound else [])

    def pace_line(self) -> str:
        """One sentence on what set the pace, when one side clearly waited for the other."""
        if not self.wall_seconds or not self.worker_seconds:
            return ""
        waited = self.input_wait_seconds / self.wall_seconds  # for decoded files; featurizing is this process's
        total = sum(self.worker_seconds.values())
        busy = total / (max(self.workers, 1) * self.wall_seconds)
        if waited < 0.3 or busy < 0.5:  # an idle pool's wait is start-up and reading, not its work
            return ""
        top, seconds = max(self.worker_seconds.items(), key=lambda kv: kv[1])
        share = seconds / total * 100
        cores = available_cores()
        more = (f"; more decoding processes (--workers {cores}) would help" if self.workers < cores
                else "; more cores, or --no-attributes, would go faster")
        who = "the workers" if self.workers else "decoding in this process"
        return f"  pace set by {who}: {top} took {share:.0f} % of {'their' if self.workers else 'its'} time{more}"


_LATER_FIELDS = ("transcript", "normalized_transcript", "embedded")
"""SourceItem fields added after collections existed: they count only when set, so that a new version
alone does not make every stored item look edited (and re-embed the collection)."""


def item_hash(item: SourceItem) -> str:
    """Hash of the manifest fields of an item: a caption edit re-embeds even when the audio is the same."""
    data = {k: v for k, v in asdict(item).items() if k != "path" and not (k in _LATER_FIELDS and v is None)}
    return hashlib.blake2b(json.dumps(data, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def plan(source: Source, coll: Collection) -> Plan:
    """Compare the source with the collection: new and changed items to do, unchanged and gone ones."""
    stored: dict[str, tuple[str, int, int, str, list[int]]] = {}
    for key, digest, size, mtime, mhash, ids in coll.sql(
        "SELECT source_key, any_value(content_hash), any_value(file_size), any_value(file_mtime_ns),"
        " any_value(manifest_hash), list(id) FROM clips GROUP BY source_key"
    ).fetchall():
        stored[key] = (digest, size, mtime, mhash, ids)
    bad = dict(
        coll.sql(
            "SELECT source_key, arg_max(content_hash, id) FROM errors WHERE stage <> 'manifest' GROUP BY source_key"
        ).fetchall()
    )
    todo: list[SourceItem] = []
    replaced: dict[str, list[int]] = {}
    unchanged = known_bad = 0
    for item in source.items:
        try:
            st = os.stat(item.path)
        except OSError:
            todo.append(item)  # the worker records why it cannot be read
            continue
        if item.key in stored:
            digest, size, mtime, mhash, ids = stored[item.key]
            same_meta = mhash == item_hash(item)
            if same_meta and size == st.st_size and mtime == st.st_mtime_ns:
                unchanged += 1
                continue
            if same_meta and digest == file_hash(item.path):
                unchanged += 1
                continue
            replaced[item.key] = list(ids)
            todo.append(item)
        elif bad.get(item.key) is not None and bad[item.key] == file_hash(item.path):
            known_bad += 1
        else:
            todo.append(item)
    keys = {i.key for i in source.items}
    missing = [k for k in stored if k not in keys]
    missing_ids = [i for k in missing for i in stored[k][4]]
    return Plan(todo, replaced, unchanged, known_bad, missing, missing_ids)


def _identity(x: Any) -> Any:
    return x


class _ProcessingList:
    """A map-style dataset whose items are decoded (and measured) inside the DataLoader workers."""

    def __init__(self, items: list[SourceItem], attributes: bool = False) -> None:
        self.items = items
        self.attributes = attributes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Decoded | Failed:
        return process(self.items[i], attributes=self.attributes)


def _die_with_parent(_worker_id: int) -> None:
    """DataLoader worker init: on Linux, ask the kernel to SIGKILL this worker when the indexer dies.

    A `kill -9` of the indexer gives its workers no chance to clean up; without this they can linger
    as orphans holding memory (and CPU) long after the run is gone. The re-run resumes anyway."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except OSError:
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def decoded_in_workers(
    items: list[SourceItem], workers: int, prefetch: int = 8, attributes: bool = False
) -> Iterator[Decoded | Failed]:
    """Decode in `workers` DataLoader processes so decoding overlaps with embedding in this process.

    The workers start here, in the calling thread, not lazily in whichever thread first asks for an
    item: `_die_with_parent` ties each worker's life to the thread that forked it, which must be the
    indexer's main thread, not a prefetch thread that ends earlier. Results are numpy waveforms, not
    padded tensors, so there is nothing worth pinning yet (`pin_memory=False`): the pinned copy is
    made per model batch, after featurizing and padding (searchengine.model.encoder.host_batch).
    """
    if workers <= 0 or not items:
        return (process(i, attributes=attributes) for i in items)
    import gc

    from torch.utils.data import DataLoader

    loader = DataLoader(
        _ProcessingList(items, attributes),
        batch_size=None,
        num_workers=workers,
        collate_fn=_identity,
        prefetch_factor=prefetch,
        pin_memory=False,
        worker_init_fn=_die_with_parent,
    )
    # Workers are forked. Garbage left in this process's heap (an unreachable cycle holding a DuckDB
    # connection, say) would be collected in a worker, whose copy has none of this process's threads:
    # DuckDB's destructor joins its scheduler threads and the worker segfaults. So garbage is
    # collected here first, and the heap is frozen while the workers fork, out of their collector's
    # reach (and not touched, so not copied, by it). The freeze is the guard that always holds: while
    # another thread is mid-collection, gc.collect() returns at once without collecting, and what it
    # missed then stays frozen in the workers and is collected here later.
    gc.collect()
    # A pre-forking host's own freeze stays. Then what lived here at the workers' start stays frozen
    # too (gc.unfreeze cannot thaw only our part), which is what such a host asked for anyway.
    frozen_by_caller = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        return iter(loader)
    finally:
        if not frozen_by_caller:
            gc.unfreeze()


def embed_chunks(
    results: Iterable[Decoded | Failed],
    encoder: Any,
    batch_seconds: float,
    chunk_files: int,
    times: LoopTimes | None = None,
    prefetch: bool = True,
) -> Iterator[Chunk]:
    """Group decoded files into chunks of `chunk_files` (the encoder buckets them by length) and embed.

    With `prefetch` (the default), a background thread keeps taking results off `results` (the
    workers' output queue) into a queue of at most `chunk_files` files while this thread embeds and
    the caller writes, so the workers are never stalled by a full output queue and the next chunk is
    usually decoded by the time it is wanted. At most two chunks of decoded audio are held at once. A worker exception
    (as opposed to a bad file, which is a `Failed` record) reaches the caller at its place in order.
    Without `prefetch`, files are taken and speech batches featurized only when needed, in this
    thread: the path to compare against.
    """
    times = times if times is not None else LoopTimes()

    def waited(seconds: float) -> None:
        times.input_wait += seconds

    source = timed(prefetched(results, chunk_files if prefetch else 0), waited)
    decoded: list[Decoded] = []
    failed: list[Failed] = []

    def embedded() -> Chunk:
        started = time.perf_counter()
        chunk = embed(encoder, decoded, failed, batch_seconds, times.speech, DEFAULT_PREFETCH if prefetch else 0)
        times.embed += time.perf_counter() - started
        times.captions += chunk.caption_seconds
        return chunk

    for r in source:
        (decoded if isinstance(r, Decoded) else failed).append(r)
        if len(decoded) + len(failed) >= chunk_files:
            yield embedded()
            decoded, failed = [], []
    if decoded or failed:
        yield embedded()


def clip_rows(d: Decoded) -> list[dict[str, Any]]:
    """One `clips` row per segment of a decoded file."""
    item = d.item
    mhash = item_hash(item)
    measured = d.attributes or [{} for _ in d.starts]
    return [
        {
            **item.metadata,
            **measured[n],
            "source_key": item.key,
            "source_path": item.path,
            "segment": n,
            "start": round(s, 4),
            "end": round(e, 4),
            "duration": round(e - s, 4),
            "sample_rate": d.sample_rate,
            "channels": d.channels,
            "speaker": item.speaker,
            "language": item.language,
            "global_caption": item.global_caption,
            "fine_captions": list(item.fine_captions),
            "transcript": item.transcript,
            "normalized_transcript": item.normalized_transcript,
            "content_hash": d.content_hash,
            "file_size": d.file_size,
            "file_mtime_ns": d.file_mtime_ns,
            "manifest_hash": mhash,
        }
        for n, (s, e) in enumerate(zip(d.starts, d.ends, strict=False))
    ]


def write_chunk(tx: Any, chunk: Chunk, source: Source, p: Plan, run_id: int, summary: Summary) -> None:
    """Stage one chunk in a transaction: replace old versions, add clips+captions, record failures."""
    old = [i for d in chunk.decoded for i in p.replaced.get(d.item.key, [])]
    old += [i for f in chunk.failed for i in p.replaced.pop(f.item.key, [])]  # a changed file now broken: drop it
    summary.clips_deleted += tx.delete(old)
    rows: list[dict[str, Any]] = []
    first_row: list[int] = []
    for d in chunk.decoded:
        first_row.append(len(rows))
        rows.extend(clip_rows(d))
    captions = [Caption(first_row[i], kind, text) for i, kind, text in chunk.captions]
    types = {**source.column_types, **ATTRIBUTE_COLUMNS}
    if chunk.segment_files:  # a worker wrote the vectors (indexer.ray_backend): adopt its files
        tx.claim_ids(chunk.clip_ids, chunk.caption_ids)
        tx.add(rows, None, captions, None, types, run_id=run_id, reserved=chunk.clip_ids, caption_ids=chunk.caption_ids)
        for kind, path in chunk.segment_files.items():
            tx.adopt_segment(kind, path)
    else:
        at, vectors = speaker_rows(chunk.decoded)
        tx.add(rows, chunk.speech, captions, chunk.caption_vectors, types, run_id=run_id, speaker_rows=at,
               speaker_vectors=np.vstack(vectors) if vectors else None)
    tx.clear_errors([d.item.key for d in chunk.decoded])
    for f in chunk.failed:
        tx.record_error(f.item.key, f.item.path, f.stage, f.reason, f.message, f.content_hash, run_id)
        summary.failures[f.reason] = summary.failures.get(f.reason, 0) + 1
    for d in chunk.decoded:
        for stage, seconds in d.stage_seconds.items():
            summary.worker_seconds[stage] = summary.worker_seconds.get(stage, 0.0) + seconds
        for stage, how in d.stage_runtimes.items():
            summary.worker_runtimes.setdefault(stage, set()).add(how)
    summary.files_added += len(chunk.decoded)
    summary.files_failed += len(chunk.failed)
    summary.clips_added += len(rows)
    summary.audio_seconds += sum(d.seconds for d in chunk.decoded)


def audio_span(seconds: float) -> str:
    """An amount of audio as a person reads it on a progress bar: seconds, minutes or hours."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def open_collection(path: str | Path, model_id: str, dim: int, index_factory: str | None) -> Collection:
    """Open the collection for `model_id`, creating it on first use."""
    if Collection.exists(path):
        coll = Collection.open(path, model_id=model_id)
        if index_factory and coll.info.get("index_factory") != index_factory:
            coll.info["index_factory"] = index_factory  # stored with the next commit
        return coll
    return Collection.create(path, model_id=model_id, dim=dim, index_factory=index_factory or "auto")


def run_index(
    source: str | Path,
    collection: str | Path,
    encoder: Any,
    workers: int = 1,
    batch_seconds: float = 240.0,
    index_factory: str | None = None,
    delete_missing: bool = False,
    commit_every: int = DEFAULT_COMMIT_EVERY,
    chunk_files: int = 64,
    progress: bool = True,
    backend: str = "local",
    ray_actors: int | None = None,
    model_spec: str | None = None,
    args: dict[str, Any] | None = None,
    attributes: bool = True,
    prefetch: bool = True,
) -> Summary:
    """Index `source` into `collection` with `encoder`; safe to kill and re-run at any moment.

    With `attributes`, decode workers also measure every clip (searchengine.attributes), and a last
    step bins the measurements over the whole collection, writes their words and a global caption
    for each clip without one (see indexer.describe). That step runs on every run, so a run killed
    before it, or one with nothing new to do, still leaves the collection described.

    `prefetch=False` turns off the overlap threads (decoded files drained ahead of the embedding loop,
    speech batches featurized ahead of the model) to measure what they buy; the vectors are the same.
    """
    started = time.perf_counter()
    chunk_files = max(1, min(chunk_files, commit_every))  # a commit can only fall between chunks
    src = read_source(source)
    coll = open_collection(collection, encoder.model_id, encoder.dim, index_factory)
    coll.release_between_commits = True
    coll.background_merges = True  # merges are built beside the embedding loop, listed by later commits
    summary = Summary(str(source), str(collection), encoder.model_id, files_total=len(src.items),
                      scan_skipped=src.skipped, workers=workers if backend == "local" else 0)
    times = LoopTimes()
    try:
        # Audio inside the source (dataset bytes, tar members) becomes files the collection owns.
        src = extract_embedded(src, coll.audio_dir, progress)
        p = plan(src, coll)
        summary.files_unchanged, summary.files_known_bad = p.unchanged, p.known_bad
        with coll.transaction() as tx:
            run_id = tx.start_run(str(source), encoder.model_id, args or {})
            for dup in src.duplicates:
                tx.record_error(dup.key, dup.path, "manifest", "duplicate_id", f"id {dup.key!r} appears more than once; first row kept", None, run_id)
            if delete_missing and p.missing_ids:
                summary.clips_deleted += tx.delete(p.missing_ids)
        if backend == "ray":
            from indexer.ray_backend import ray_chunks

            chunks = ray_chunks(p.todo, encoder, batch_seconds, chunk_files, actors=ray_actors, model=model_spec,
                                collection=collection, first_ids=coll.id_counters(),
                                attributes=attributes)
        else:
            chunks = embed_chunks(decoded_in_workers(p.todo, workers, attributes=attributes), encoder, batch_seconds,
                                  chunk_files, times, prefetch)
        bar = progress_bar(len(p.todo), "file", "indexing", progress)
        # Embedded chunks wait here (vectors and rows, their audio dropped) and are written in one
        # short transaction per commit, so the DuckDB file is free between commits for a server to
        # take a snapshot of (see searchengine.store.collection, "Readers beside a writer").
        waiting: list[Chunk] = []
        since_commit = 0
        # The bar counts chunks as they arrive; `summary` counts them only when written (each commit).
        seen_audio, seen_failed = 0.0, 0
        for chunk in chunks:
            seen_audio += sum(d.seconds for d in chunk.decoded)
            seen_failed += len(chunk.failed)
            for d in chunk.decoded:
                d.waveforms = []
            waiting.append(chunk)
            since_commit += len(chunk.decoded) + len(chunk.failed)
            if since_commit >= commit_every:
                writing = time.perf_counter()
                with coll.transaction() as tx:
                    for c in waiting:
                        write_chunk(tx, c, src, p, run_id, summary)
                    _note_runtimes(summary, encoder, backend, captions_embedded=times.captions > 0)
                    tx.update_run(run_id, **_run_fields(summary, started, "running"))
                waiting, since_commit = [], 0
                summary.write_seconds += time.perf_counter() - writing
            elapsed = time.perf_counter() - started
            bar.update(len(chunk.decoded) + len(chunk.failed))
            bar.set_postfix(audio=audio_span(seen_audio), xRT=f"{seen_audio / max(elapsed, 1e-9):.1f}", failed=seen_failed)
        bar.close()
        writing = time.perf_counter()
        tx = coll.begin()
        for c in waiting:
            write_chunk(tx, c, src, p, run_id, summary)
        if attributes:
            describing = time.perf_counter()
            summary.captions_generated = describe(tx, encoder).captions_written
            summary.describe_seconds = time.perf_counter() - describing
        summary.input_wait_seconds, summary.embed_seconds = times.input_wait, times.embed
        summary.prepare_wait_seconds, summary.caption_seconds = times.speech.prepare_wait_seconds, times.captions
        _note_runtimes(summary, encoder, backend, captions_embedded=bool(times.captions or summary.captions_generated))
        tx.update_run(run_id, **_run_fields(summary, started, "done"))
        tx.commit()
        summary.write_seconds += time.perf_counter() - writing - summary.describe_seconds
        summary.wall_seconds = time.perf_counter() - started
        coll.finish_merges()
    finally:
        coll.close()
    return summary


def _note_runtimes(summary: Summary, encoder: Any, backend: str, captions_embedded: bool) -> None:
    """Name how this process embedded speech and captions, once each has happened: at every commit,
    so that the `runs` row of a run killed midway says it too. Ray's actors embed elsewhere, so
    nothing is named for them."""
    if backend == "ray":
        return
    if summary.clips_added and not summary.speech_runtime:
        summary.speech_runtime = encoder.speech_runtime()
    if captions_embedded and not summary.caption_runtime:
        summary.caption_runtime = encoder.text_runtime()


def _run_fields(s: Summary, started: float, status: str) -> dict[str, Any]:
    import datetime as dt

    runtimes = s.runtimes()

    return {
        "status": status,
        "finished": dt.datetime.now(dt.UTC).replace(tzinfo=None) if status == "done" else None,
        "clips_added": s.clips_added,
        "clips_deleted": s.clips_deleted,
        "files_added": s.files_added,
        "files_unchanged": s.files_unchanged,
        "files_failed": s.files_failed,
        "audio_seconds": s.audio_seconds,
        "wall_seconds": time.perf_counter() - started,
        "runtimes": json.dumps(runtimes, sort_keys=True) if runtimes else None,
    }
