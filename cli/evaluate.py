"""`clsp-search eval`: score any model on a user's own manifest with the CLSP paper's protocol.

Only typer is imported at module level: torch and transformers load inside the command, so that
`clsp-search --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    model: Annotated[str, typer.Option("--model", help="clsp-mini, a checkpoint directory, a downloaded release (clsp, paraspeechclap) or CLAP.")] = "clsp-mini",
    manifest: Annotated[Path, typer.Option("--manifest", help="Manifest (jsonl) or corpus directory.")] = Path("manifest.jsonl"),
    split: Annotated[str, typer.Option(help="Which split to score ('all' for every clip).")] = "test",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    max_clips: Annotated[int, typer.Option(help="Cap on clips (0 = all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score a model with the CLSP protocol: retrieval, zero-shot classification, style similarity."""
    from searchengine.model.checkpoint import CheckpointError
    from searchengine.model.evaluate import evaluate as run_evaluation
    from searchengine.model.evaluate import format_report
    from searchengine.model.registry import load_model

    try:
        encoder = load_model(model, device=device)
    except CheckpointError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    result = run_evaluation(encoder, manifest, split=split, max_clips=max_clips or None,
                            show_progress=not as_json, log=None if as_json else typer.echo)
    typer.echo(json.dumps(result, indent=2) if as_json else format_report(result))
