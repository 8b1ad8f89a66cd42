"""`--ray`: decoding as Ray Data tasks and embedding in Ray actors (one per GPU), across a Ray cluster.

Only the middle of the pipeline moves to Ray: the driver still plans the run and writes every chunk
through the same collection transaction as the local path, so resumability, error records and the
stored rows are identical. Rows travel between stages as pickled records in a binary column, which
keeps ragged waveforms out of Ray's tensor-column handling.

Ray is optional: `require_ray` turns its absence into an actionable message.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np

from indexer.decode import Decoded, process
from indexer.embedding import Chunk, embed
from searchengine.manifest import SourceItem


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


class EmbedActor:
    """Ray actor holding one model replica; embeds a batch of decoded records into one `Chunk`."""

    def __init__(self, model: str, device: str, batch_seconds: float) -> None:
        import ray

        from searchengine.model import load_model

        if device == "auto":
            device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.encoder = load_model(model, device=device)
        self.batch_seconds = batch_seconds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = [pickle.loads(b) for b in batch["record"]]
        decoded = [r for r in records if isinstance(r, Decoded)]
        failed = [r for r in records if not isinstance(r, Decoded)]
        chunk = embed(self.encoder, decoded, failed, self.batch_seconds)
        for d in chunk.decoded:  # the driver needs the facts, not the samples
            d.waveforms = []
        return {"chunk": np.array([pickle.dumps(chunk)], dtype=object)}


def _init_ray(actors: int) -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=max(actors + 1, os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)


def ray_chunks(
    items: list[SourceItem],
    encoder: Any,
    batch_seconds: float,
    chunk_files: int,
    actors: int | None = None,
    model: str | None = None,
    device: str = "auto",
    attributes: bool = False,
) -> Iterator[Chunk]:
    """Embedded chunks of `items` computed by Ray Data; `model` defaults to the encoder's name."""
    require_ray()
    import ray
    import ray.data

    if not items:
        return
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
        fn_constructor_kwargs={"model": model or encoder.name, "device": device, "batch_seconds": batch_seconds},
        batch_size=chunk_files,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=0 if gpus else 1,
    )
    for row in ds.iter_rows():
        yield pickle.loads(row["chunk"])
