"""The `clsp-search` command: one entry point, one sub-command per job.

The command line is the top layer: it may import every package (`searchengine`, `indexer`, `api`,
`training`) and none of them imports it. Each group of commands lives in its own module here or next
to its package's code (`indexer/cli.py`, `training/cli.py`); this module only wires them together.
Starting the CLI stays fast: heavy imports (torch, faiss, uvicorn) happen inside the commands.
"""

from __future__ import annotations

import typer

from cli import compact, evaluate, query, serve
from cli.corpus import app as corpus_app
from cli.models import app as models_app
from indexer import cli as indexer_cli
from training import cli as training_cli

app = typer.Typer(
    name="clsp-search",
    help="Speech-text vector search: find voices by describing them or by example.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(corpus_app, name="corpus")
app.add_typer(models_app, name="models")

app.command("index")(indexer_cli.index)
app.command("compact")(compact.compact)
app.command("search")(query.search)
app.command("similar")(query.similar)
app.command("export")(query.export)
app.command("serve")(serve.serve)
app.command("eval")(evaluate.evaluate)
app.command("train")(training_cli.train)
app.command("tune-text")(training_cli.tune_text)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
