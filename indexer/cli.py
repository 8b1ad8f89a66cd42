"""`clsp-search index`: build or update a collection from a manifest or a folder of audio.

Heavy imports (torch, faiss, duckdb) happen inside the command so `clsp-search --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def default_workers(attributes: bool = False) -> int:
    """Decoding processes, at most 8. Without attributes, decoding is cheap next to the model, so one
    core is left to it; with them, measuring (DNSMOS above all) is the bound and the model waits most of
    the run, so every core gets a worker (10.2x against 17.2x real time with 1 and 2 workers on 2 cores
    for real recordings, benchmarks/RESULTS.md "Indexing")."""
    from searchengine.cores import available_cores

    cores = available_cores()
    return max(1, min(8, cores if attributes else cores - 1))


def set_aside_if_model_changed(collection: Path, model_id: str) -> Path | None:
    """Rename a collection built with another model to `<collection>.previous` (replacing an older one).

    A rename, not a delete: the old collection stays usable until the user removes it, and the new
    one is built by the normal crash-safe path into the now empty directory.
    """
    import shutil

    from searchengine.store import Collection

    stored = Collection.stored_model_id(collection)
    if stored is None or stored == model_id:
        return None
    previous = collection.with_name(collection.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    collection.rename(previous)
    return previous


def index(
    source: Annotated[Path, typer.Argument(help="Manifest (.jsonl, .csv, .parquet) or a folder of audio files.")],
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection directory (created if new).")],
    model: Annotated[str, typer.Option(help="Model name (clsp-mini) or checkpoint directory.")] = "clsp-mini",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    workers: Annotated[int | None, typer.Option(help="Decoding processes (default: one per core with --attributes, cores - 1 without; at most 8).")] = None,
    batch_seconds: Annotated[float, typer.Option(help="Audio seconds per model batch (bounds memory).")] = 240.0,
    index_factory: Annotated[
        str | None, typer.Option(help="FAISS factory string, e.g. 'IVF4096_HNSW32,SQ8' (default: chosen by size).")
    ] = None,
    delete_missing: Annotated[bool, typer.Option("--delete-missing", help="Remove clips whose source is gone.")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="Embed with Ray Data actors (needs `pip install ray`).")] = False,
    ray_actors: Annotated[int | None, typer.Option(help="Ray embedding actors (default: one per GPU, else 2).")] = None,
    commit_every: Annotated[int, typer.Option(help="Files per durable commit (resume granularity).")] = 2000,
    attributes: Annotated[
        bool,
        typer.Option(
            "--attributes/--no-attributes",
            help="Measure pitch, rate, loudness, SNR, reverb, DNSMOS and speaker per clip, and caption clips "
            "without a global caption from them (roughly halves throughput on CPU).",
        ),
    ] = True,
    rebuild_on_model_change: Annotated[
        bool,
        typer.Option(
            "--rebuild-on-model-change",
            help="If the collection was built with other model weights, move it aside to DIR.previous and "
            "build it anew (default: refuse, since vectors of two models cannot be mixed).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Embed speech and captions from SOURCE into the collection; safe to stop and re-run."""
    from searchengine.manifest import ManifestError, read_source
    from searchengine.store import CollectionError

    if ray:
        from indexer.ray_backend import require_ray

        try:
            require_ray()
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    try:
        read_source(source)  # a bad manifest stops here, before the model is loaded
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    from indexer.pipeline import run_index
    from searchengine.model import CheckpointError, load_model

    try:
        encoder = load_model(model, device=device)
    except CheckpointError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if rebuild_on_model_change:
        previous = set_aside_if_model_changed(collection, encoder.model_id)
        if previous is not None:
            typer.echo(f"{collection} was built with other model weights; moved to {previous}, building anew")
    args = {"model": model, "device": device, "workers": workers, "batch_seconds": batch_seconds,
            "index_factory": index_factory, "delete_missing": delete_missing, "ray": ray, "attributes": attributes}
    try:
        summary = run_index(
            source,
            collection,
            encoder,
            workers=default_workers(attributes) if workers is None else workers,
            batch_seconds=batch_seconds,
            index_factory=index_factory,
            delete_missing=delete_missing,
            commit_every=commit_every,
            progress=not quiet,
            backend="ray" if ray else "local",
            ray_actors=ray_actors,
            model_spec=model,
            args=args,
            attributes=attributes,
        )
    except (ManifestError, CollectionError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for line in summary.lines():
        typer.echo(line)
