"""The `clsp-search` command: one entry point, one sub-command per job.

Each feature keeps its own commands next to its code (`searchengine/corpus/cli.py`,
`searchengine/model/cli.py`, ...); this module only wires them together, so that starting the CLI stays
fast (heavy imports such as torch happen inside the commands that need them).
"""

from __future__ import annotations

import typer

from indexer import cli as indexer_cli
from searchengine import query_cli
from searchengine.corpus.cli import app as corpus_app
from searchengine.model import cli as model_cli

app = typer.Typer(
    name="clsp-search",
    help="Speech-text vector search: find voices by describing them or by example.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(corpus_app, name="corpus")


app.command("index")(indexer_cli.index)
app.command("search")(query_cli.search)
app.command("similar")(query_cli.similar)
app.command("export")(query_cli.export)
app.command("serve")(query_cli.serve)
app.command("train")(model_cli.train)
app.command("tune-text")(model_cli.tune_text)
app.command("combine-text-heads")(model_cli.combine_text_heads)
app.command("eval")(model_cli.evaluate)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
