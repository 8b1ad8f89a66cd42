"""`clsp-search train` and `clsp-search tune-text`: how clsp-mini is made.

Only typer is imported at module level: torch and transformers load inside the commands, so that
`clsp-search --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Options both training commands take, with one wording.
ComputeDtypeOpt = Annotated[str, typer.Option(
    help="Precision of the frozen text tower's caption pass and of the training steps: float32, bfloat16 "
         "(about twice as fast on CPUs with AMX / AVX512-BF16, several times slower elsewhere; validation "
         "stays float32), or auto (bfloat16 where the CPU has it in hardware, else float32).")]
ValidateEveryOpt = Annotated[int, typer.Option(
    help="Score validation and export the best epoch so far every N epochs (and at the last).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run saved in --out.")]


def _compute_dtype(requested: str) -> str:
    """`--compute-dtype` as the run will use it (`auto` resolved for this CPU); a bad value exits 2."""
    from training.precision import resolve_compute_dtype

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
    compute_dtype: ComputeDtypeOpt = "float32",
    validate_every: ValidateEveryOpt = 1,
    resume: ResumeOpt = False,
) -> None:
    """Train a CLSP model on a style corpus (stage 1 then stage 2), exporting the best epoch to --out."""
    from training.train import TrainSettings
    from training.train import train as run_training

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
    text_pooling: Annotated[str, typer.Option(
        help="Text pooling of the tuned model: mean, cls or head_mean (the head per token, then the mean); "
             "default: the model's own.")] = "",
    token_memory: Annotated[int, typer.Option(
        help="Centroids of a memory of training token states that unfamiliar words are blended toward "
             "(needs head_mean pooling; 0 = keep the model's own, if any).")] = 0,
    memory_weight: Annotated[float, typer.Option(
        help="How far each token state is blended toward the memory (0..1).")] = 0.5,
    compute_dtype: ComputeDtypeOpt = "float32",
    validate_every: ValidateEveryOpt = 1,
    keep_head: Annotated[bool, typer.Option("--keep-head", help="Start from the model's text head instead of fresh weights.")] = False,
    workers: Annotated[int, typer.Option(help="Processes for the one-off speech feature extraction.")] = 2,
    resume: ResumeOpt = False,
) -> None:
    """Retrain a model's text head on wider wording against its locked speech side; speech embeddings
    (and so a collection's speech index) stay exactly as they were."""
    from searchengine.model.checkpoint import CheckpointError
    from training.tune_text import TextTuneSettings
    from training.tune_text import tune_text as run_tuning

    compute_dtype = _compute_dtype(compute_dtype)
    settings = TextTuneSettings(seed=seed, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                paraphrase_share=paraphrase_share, paraphrase_sets=paraphrase_sets,
                                attribute_caption_weight=attribute_caption_weight, reset_head=not keep_head,
                                text_pooling=text_pooling, token_memory=token_memory, memory_weight=memory_weight,
                                compute_dtype=compute_dtype, validate_every=validate_every, workers=workers)
    try:
        directory = run_tuning(model, corpus, out, settings, resume=resume, log=typer.echo)
    except (CheckpointError, ValueError, FileExistsError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"model written to {directory}")
