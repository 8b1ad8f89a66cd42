"""`clsp-search models download NAME [--dir DIR]` and `clsp-search models list`.

Downloading is the only command that reaches the network (searchengine.model.download); every load
is offline and reads the directory it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Download the released models (the one command that uses the network) and list models.",
                  no_args_is_help=True)


@app.command("download")
def download(
    name: Annotated[str, typer.Argument(help="clsp (yfyeung/CLSP + roberta-base) or paraspeechclap (intrinsic, "
                                             "situational and combined checkpoints + WavLM/granite configs).")],
    directory: Annotated[Path | None, typer.Option("--dir", help="Target directory (default: $CLSP_SEARCH_MODELS"
                                                                 "/NAME, else models/NAME).")] = None,
) -> None:
    """Fetch a released model and every file its code loads by name into one directory; resumable."""
    from searchengine.model.download import NoNetworkError
    from searchengine.model.download import download as fetch

    try:
        target = fetch(name, directory, log=lambda line: typer.echo(line, err=True))
    except NoNetworkError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(3) from exc
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{name} is in {target}: use it with --model {target}")


@app.command("list")
def list_models(
    root: Annotated[Path | None, typer.Option("--root", help="Where downloaded models are (default: "
                                                             "$CLSP_SEARCH_MODELS, else models).")] = None,
) -> None:
    """Bundled models and downloaded ones, with the model id each gives a collection."""
    from searchengine.model.catalogue import RELEASES
    from searchengine.model.checkpoint import WEIGHTS_FILE, file_checksum
    from searchengine.model.download import list_downloaded, models_root
    from searchengine.model.registry import WEIGHTS_DIR
    from searchengine.model.registry import list_models as bundled

    typer.echo("bundled:")
    for name in bundled():
        typer.echo(f"  {name:<16} {name}@{file_checksum(WEIGHTS_DIR / name / WEIGHTS_FILE)}  (--model {name})")
    downloaded = list_downloaded(root)
    typer.echo(f"downloaded (in {root or models_root()}):")
    for item in downloaded:
        typer.echo(f"  {item['model']:<16} {item['id']}  (--model {item['path']}; {', '.join(item['sources'])})")
    if not downloaded:
        typer.echo("  none")
    typer.echo("available to download: " + ", ".join(
        f"{name} ({release.licence})" for name, release in sorted(RELEASES.items())))
