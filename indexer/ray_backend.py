"""`--ray`: decoding as Ray Data tasks and embedding in Ray actors (one per GPU), across a Ray cluster.

Only the middle of the pipeline moves to Ray: the driver still plans the run and writes every chunk
through the same collection transaction as the local path, so resumability, error records and the
stored rows are identical. Rows travel between stages as pickled records in a binary column, which
keeps ragged waveforms out of Ray's tensor-column handling.

Vectors do not travel back: each actor writes its chunk's vectors as segment files (one per index
kind, `searchengine.store.segments.write_segment`) into the collection's `incoming/` folder, with
clip and caption ids drawn from one allocator actor (`IdBlocks`) that starts at the collection's
committed counters, and returns the file paths. The driver's commit claims those ids and adopts the
files (`Transaction.claim_ids`, `adopt_segment`): renamed into the collection, so a distributed
commit is a manifest update. Workers must see the collection at the same path as the driver, as
they already see the audio (a shared file system on a multi-machine cluster).

Ray is optional: `require_ray` turns its absence into an actionable message.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from indexer.decode import Decoded, process
from indexer.embedding import Chunk, embed, speaker_rows
from searchengine.cores import available_cores
from searchengine.manifest import SourceItem

INCOMING_DIR = "incoming"
"""Where actors write segment files inside the collection until a commit adopts them."""


def require_ray() -> None:
    """Raise a one-line RuntimeError saying how to install Ray when it cannot be imported."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("--ray needs Ray Data, which is not installed: pip install 'ray[data]'") from exc


def _decode_batch(batch: dict[str, np.ndarray], attributes: bool = False) -> dict[str, np.ndarray]:
    """Ray task: decode (and measure) the items of a batch (runs wherever Ray schedules it)."""
    out = [pickle.dumps(process(pickle.loads(b), attributes=attributes)) for b in batch["item"]]
    return {"record": np.array(out, dtype=object)}


class IdBlocks:
    """Ray actor handing out consecutive blocks of clip and caption ids from the collection's
    committed counters: every id one run's actors write into a segment file is distinct."""

    def __init__(self, next_clip_id: int, next_caption_id: int) -> None:
        self.next = [int(next_clip_id), int(next_caption_id)]

    def take(self, clips: int, captions: int) -> tuple[int, int]:
        first = (self.next[0], self.next[1])
        self.next[0] += int(clips)
        self.next[1] += int(captions)
        return first


def write_chunk_segments(chunk: Chunk, first_clip: int, first_caption: int, out_dir: Path, name: str) -> Chunk:
    """Write a chunk's vectors as segment files (speech, speaker, global, fine: those it has) into
    `out_dir` with ids counted from `first_clip` / `first_caption`, and return the chunk without them."""
    from searchengine.store import CAPTION_KINDS
    from searchengine.store.segments import write_segment

    clip_ids = np.arange(first_clip, first_clip + len(chunk.speech), dtype=np.int64)
    caption_ids = np.arange(first_caption, first_caption + len(chunk.captions), dtype=np.int64)
    rows, vectors = speaker_rows(chunk.decoded)
    kinds = np.array([kind for _, kind, _ in chunk.captions])
    parts = {"speech": (chunk.speech, clip_ids),
             "speaker": (np.vstack(vectors) if vectors else None, clip_ids[np.asarray(rows, np.int64)])}
    for kind in CAPTION_KINDS:
        sel = np.flatnonzero(kinds == kind)
        parts[kind] = (chunk.caption_vectors[sel], caption_ids[sel])
    files: dict[str, str] = {}
    for kind, (vecs, ids) in parts.items():
        if vecs is not None and len(ids):
            files[kind] = str(write_segment(vecs, ids, out_dir / f"{name}.{kind}.faiss"))
    return Chunk(chunk.decoded, chunk.failed, chunk.speech[:0], chunk.captions, chunk.caption_vectors[:0], files,
                 clip_ids, caption_ids)


class EmbedActor:
    """Ray actor holding one model replica; embeds a batch of decoded records into one `Chunk`, its
    vectors written as segment files for the driver to adopt."""

    def __init__(self, model: str, device: str, batch_seconds: float, segments_dir: str, ids: Any) -> None:
        import ray

        from searchengine.model import load_model

        if device == "auto":
            device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.encoder = load_model(model, device=device)
        self.batch_seconds = batch_seconds
        self.segments_dir = Path(segments_dir)
        self.ids = ids

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        records = [pickle.loads(b) for b in batch["record"]]
        decoded = [r for r in records if isinstance(r, Decoded)]
        failed = [r for r in records if not isinstance(r, Decoded)]
        chunk = embed(self.encoder, decoded, failed, self.batch_seconds)
        for d in chunk.decoded:  # the driver needs the facts, not the samples
            d.waveforms = []
        if len(chunk.speech) or chunk.captions:
            first_clip, first_caption = ray.get(self.ids.take.remote(len(chunk.speech), len(chunk.captions)))
            chunk = write_chunk_segments(chunk, first_clip, first_caption, self.segments_dir, uuid.uuid4().hex)
        return {"chunk": np.array([pickle.dumps(chunk)], dtype=object)}


def _init_ray(actors: int) -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=max(actors + 1, available_cores()), include_dashboard=False, log_to_driver=False)


def prepare_incoming(collection: str | Path) -> Path:
    """The collection's `incoming/` folder, emptied: files left there belong to a run that was killed
    before a commit adopted them (their ids were never committed)."""
    out = Path(os.path.abspath(collection)) / INCOMING_DIR
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.iterdir():
        if leftover.is_file():
            leftover.unlink()
    return out


def ray_chunks(
    items: list[SourceItem],
    encoder: Any,
    batch_seconds: float,
    chunk_files: int,
    actors: int | None = None,
    model: str | None = None,
    device: str = "auto",
    attributes: bool = False,
    collection: str | Path | None = None,
    first_ids: tuple[int, int] = (0, 0),
) -> Iterator[Chunk]:
    """Embedded chunks of `items` computed by Ray Data; `model` defaults to the encoder's name. Their
    vectors are segment files in `collection`'s `incoming/` folder, with ids from `first_ids` (the
    collection's committed counters: `Collection.id_counters`) on."""
    require_ray()
    import ray
    import ray.data

    if not items:
        return
    if collection is None:
        raise ValueError("ray_chunks needs the collection its actors write segment files into")
    segments_dir = prepare_incoming(collection)
    gpus = 0
    actors = actors or 0
    _init_ray(max(actors, 2))
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = actors or (gpus if gpus else 2)
    ds = ray.data.from_items([{"item": pickle.dumps(i)} for i in items], override_num_blocks=max(1, len(items) // chunk_files))
    ds = ds.map_batches(_decode_batch, batch_size=chunk_files, batch_format="numpy",
                        fn_kwargs={"attributes": attributes})
    ds = ds.map_batches(
        EmbedActor,
        fn_constructor_kwargs={"model": model or encoder.name, "device": device, "batch_seconds": batch_seconds,
                               "segments_dir": str(segments_dir), "ids": ray.remote(IdBlocks).remote(*first_ids)},
        batch_size=chunk_files,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=0 if gpus else 1,
    )
    for row in ds.iter_rows():
        yield pickle.loads(row["chunk"])
