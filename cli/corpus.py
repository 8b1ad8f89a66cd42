"""`clsp-search corpus ...`: make the generated style corpus.

Heavy imports (numpy, scipy, soundfile) happen inside the commands, so `clsp-search --help` stays fast.
Every expected failure (unknown voice, missing synthesizer, unwritable directory) ends with one red
line and exit code 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="Generate the synthetic style corpus (speech with controlled, measured style factors).",
    no_args_is_help=True,
    add_completion=False,
)
_err = Console(stderr=True)


def _fail(message: str) -> None:
    _err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@app.command()
def generate(
    out_dir: Path = typer.Argument(..., help="Directory for audio/*.wav and manifest.jsonl."),
    n: int = typer.Option(2000, "--n", min=1, help="Number of clips."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same corpus."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0 = one per core this process may use: its affinity set and cgroup CPU quota)."),
    split_by_voice: bool = typer.Option(
        False, "--split-by-voice", help="Assign train/val/test by voice, so test voices are never trained on."
    ),
    voices: list[str] = typer.Option(
        None, "--voices", help="Only these voices: an id (espeak-ng:en-gb+f3), an id prefix or an engine."
    ),
    list_voices: bool = typer.Option(False, "--list-voices", help="Print the available voices and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Render N clips into OUT_DIR; re-running after an interruption completes the missing clips."""
    from searchengine.corpus.generate import CorpusError
    from searchengine.corpus.generate import generate as run_generate
    from searchengine.corpus.render import RenderError
    from searchengine.corpus.voices import VoiceSelectionError, select_voices

    patterns = [p for item in (voices or []) for p in item.split(",") if p.strip()]
    try:
        chosen = select_voices(patterns)
    except VoiceSelectionError as exc:
        _fail(str(exc))
    if list_voices:
        for v in chosen:
            typer.echo(f"{v.id}\t{v.gender}\t{v.accent}\t{v.age or '-'}\t{','.join(v.timbre) or '-'}")
        return
    if split_by_voice and len(chosen) < 3:
        _fail("--split-by-voice needs at least 3 voices")

    out = Console(stderr=True, quiet=quiet)
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=out, transient=True,
        ) as bar:
            task = bar.add_task("rendering", total=n)
            summary = run_generate(
                out_dir, n=n, seed=seed, voices=chosen, workers=workers or None,
                split_by_voice=split_by_voice,
                progress=lambda done, total: bar.update(task, completed=done),
            )
    except (CorpusError, RenderError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to complete the missing clips")
    wall = summary["render_wall_seconds"]
    rate = (f", {summary['rendered'] / wall:.1f} clips/s on {summary['workers']} worker(s)"
            if summary["rendered"] and wall > 0 else "")
    out.print(
        f"{summary['clips']} clips ({summary['rendered']} rendered, {summary['reused']} reused), "
        f"{summary['voices']} voices, {summary['audio_seconds'] / 60:.1f} min of audio{rate} -> "
        f"{summary['manifest']}",
        highlight=False, soft_wrap=True,
    )
