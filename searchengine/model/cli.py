"""`clsp-search train` and `clsp-search eval`.

Only typer is imported at module level: torch and transformers load inside the commands, so that
`clsp-search --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def _compute_dtype(requested: str) -> str:
    """`--compute-dtype` as the run will use it (`auto` resolved for this CPU); a bad value exits 2."""
    from searchengine.model.precision import resolve_compute_dtype

    try:
        dtype = resolve_compute_dtype(requested, warn=lambda message: typer.echo(message, err=True))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if requested == "auto":
        typer.echo(f"--compute-dtype auto: {dtype} on this CPU")
    return dtype


def train(
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus directory (with manifest.jsonl) or the manifest itself.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write (checkpoint, cache, logs).")],
    config: Annotated[str, typer.Option(help="Architecture from searchengine/model/configs.")] = "clsp-mini",
    seed: Annotated[int, typer.Option(help="Seed; the same seed and data give the same model.")] = 0,
    stage1_epochs: Annotated[int, typer.Option(help="Epochs of stage 1 (InfoNCE, one fine caption).")] = 8,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs of stage 2 (multi-positive).")] = 12,
    batch_size: Annotated[int, typer.Option(help="Clips per step.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate (cosine decay).")] = 1e-3,
    workers: Annotated[int, typer.Option(help="Processes for the one-off feature extraction.")] = 2,
    fine_captions: Annotated[int, typer.Option(help="Fine captions used per clip (the first k; 0 = all).")] = 2,
    attribute_loss_weight: Annotated[float, typer.Option(
        help="Weight of shared attribute classifiers on speech and fine-caption embeddings (needs labelled "
             "attributes in the manifest; 0 = the paper's objectives alone).")] = 0.0,
    attribute_caption_weight: Annotated[float, typer.Option(
        help="Weight of classifying speech and fine-caption embeddings against short one-attribute captions "
             "(\"Someone who talks rapidly.\"), as zero-shot prompts are used (needs labelled attributes; 0 = off).")] = 0.0,
    rate_regression_weight: Annotated[float, typer.Option(
        help="Weight of regressing each clip's log speaking-rate factor from its speech embedding (needs "
             "rate_factor in the manifest's attributes; 0 = off).")] = 0.0,
    compute_dtype: Annotated[str, typer.Option(
        help="Precision of the caption-feature cache pass and of the training steps: float32, bfloat16 "
             "(about twice as fast on CPUs with AMX / AVX512-BF16, several times slower elsewhere; validation "
             "stays float32), or auto (bfloat16 where the CPU has it in hardware, else float32).")] = "float32",
    validate_every: Annotated[int, typer.Option(
        help="Score validation and export the best epoch so far every N epochs (and at the last).")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run saved in --out.")] = False,
) -> None:
    """Train a CLSP model on a style corpus (stage 1 then stage 2), exporting the best epoch to --out."""
    from searchengine.model.train import TrainSettings
    from searchengine.model.train import train as run_training

    compute_dtype = _compute_dtype(compute_dtype)
    settings = TrainSettings(config=config, seed=seed, stage1_epochs=stage1_epochs, stage2_epochs=epochs,
                             batch_size=batch_size, learning_rate=learning_rate, workers=workers,
                             fine_captions_per_clip=fine_captions, attribute_loss_weight=attribute_loss_weight,
                             attribute_caption_weight=attribute_caption_weight,
                             rate_regression_weight=rate_regression_weight, compute_dtype=compute_dtype,
                             validate_every=validate_every)
    try:
        directory = run_training(corpus, out, settings, resume=resume, log=typer.echo)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"model written to {directory}")


def tune_text(
    corpus: Annotated[Path, typer.Option("--corpus", help="Corpus directory (with manifest.jsonl) or the manifest itself.")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write (checkpoint, cache, logs).")],
    model: Annotated[str, typer.Option("--model", help="The model whose text head is retrained (name or directory).")] = "clsp-mini",
    seed: Annotated[int, typer.Option(help="Seed; the same seed, model and data give the same head.")] = 0,
    epochs: Annotated[int, typer.Option(help="Epochs over the training clips.")] = 300,
    batch_size: Annotated[int, typer.Option(help="Clips per step.")] = 128,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate (cosine decay).")] = 1e-3,
    paraphrase_share: Annotated[float, typer.Option(
        help="Share of training captions taken from paraphrases in the wide phrasing pool (the rest: the manifest's).")] = 0.7,
    paraphrase_sets: Annotated[int, typer.Option(help="Paraphrase sets per clip (one global + four fine captions each).")] = 2,
    attribute_caption_weight: Annotated[float, typer.Option(
        help="Weight of classifying against short one-attribute captions (0 = off; needs labelled attributes).")] = 1.0,
    class_prompts: Annotated[int, typer.Option(
        help="One-attribute captions averaged into each class per step, as zero-shot averages prompts (1 = one).")] = 1,
    text_pooling: Annotated[str, typer.Option(
        help="Text pooling of the tuned model: mean, cls or head_mean (the head per token, then the mean); "
             "default: the model's own.")] = "",
    token_memory: Annotated[int, typer.Option(
        help="Centroids of a memory of training token states that unfamiliar words are blended toward "
             "(needs head_mean pooling; 0 = keep the model's own, if any).")] = 0,
    memory_weight: Annotated[float, typer.Option(
        help="How far each token state is blended toward the memory (0..1).")] = 0.5,
    memory_from: Annotated[str, typer.Option(
        help="Use this model's token memory as it is instead of fitting one (heads tuned through one memory "
             "can be combined by combine-text-heads).")] = "",
    ema_decay: Annotated[float, typer.Option(
        help="Decay of a moving average of the text head's weights that validation and export use (0 = off).")] = 0.0,
    token_dropout: Annotated[float, typer.Option(
        help="Share of each training caption's tokens left out of its mean per step (needs head_mean pooling).")] = 0.0,
    word_noise: Annotated[float, typer.Option(
        help="Share of words replaced by words no caption pool uses, in every second paraphrase set "
             "(0 = off).")] = 0.0,
    text_layers: Annotated[int, typer.Option(
        help="Top layers of the text tower trained along with the head (0 = the head alone; a token memory then "
             "comes from --memory-from or the model's own).")] = 0,
    text_layer_lr: Annotated[float, typer.Option(
        "--text-layer-lr", help="Peak learning rate of those layers.")] = 3e-5,
    compute_dtype: Annotated[str, typer.Option(
        help="Precision of the caption-state cache pass and of the head's training steps: float32, bfloat16 "
             "(about twice as fast on CPUs with AMX / AVX512-BF16, several times slower elsewhere; validation "
             "stays float32), or auto (bfloat16 where the CPU has it in hardware, else float32).")] = "float32",
    validate_every: Annotated[int, typer.Option(
        help="Score validation and export the best epoch so far every N epochs (and at the last).")] = 1,
    keep_head: Annotated[bool, typer.Option("--keep-head", help="Start from the model's text head instead of fresh weights.")] = False,
    workers: Annotated[int, typer.Option(help="Processes for the one-off speech feature extraction.")] = 2,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run saved in --out.")] = False,
) -> None:
    """Retrain a model's text head on wider wording against its locked speech side; speech embeddings
    (and so a collection's speech index) stay exactly as they were."""
    from searchengine.model.checkpoint import CheckpointError
    from searchengine.model.tune_text import TextTuneSettings
    from searchengine.model.tune_text import tune_text as run_tuning

    compute_dtype = _compute_dtype(compute_dtype)
    settings = TextTuneSettings(seed=seed, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                paraphrase_share=paraphrase_share, paraphrase_sets=paraphrase_sets,
                                attribute_caption_weight=attribute_caption_weight, class_prompts=class_prompts,
                                reset_head=not keep_head, text_pooling=text_pooling,
                                token_memory=token_memory, memory_weight=memory_weight, memory_from=memory_from,
                                ema_decay=ema_decay, token_dropout=token_dropout, word_noise=word_noise, text_layers=text_layers,
                                text_layer_learning_rate=text_layer_lr, compute_dtype=compute_dtype, validate_every=validate_every,
                                workers=workers)
    try:
        directory = run_tuning(model, corpus, out, settings, resume=resume, log=typer.echo)
    except (CheckpointError, ValueError, FileExistsError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"model written to {directory}")


def combine_text_heads(
    models: Annotated[list[str], typer.Argument(help="Two or more models tuned by tune-text from one step-1 model "
                                                     "through one token memory (names or directories).")],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
) -> None:
    """Write one model whose text embedding is the mean of the given models' text heads; its speech side is
    theirs, unchanged."""
    from searchengine.model.checkpoint import CheckpointError
    from searchengine.model.ensemble import combine_text_heads as combine

    try:
        directory = combine(models, out)
    except (CheckpointError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"model written to {directory}")


def evaluate(
    model: Annotated[str, typer.Option("--model", help="clsp-mini, a checkpoint directory, released CLSP or CLAP.")] = "clsp-mini",
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
