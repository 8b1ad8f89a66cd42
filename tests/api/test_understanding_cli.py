"""`clsp-search search` says what it understood, what it left to the model and what nothing ranks."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from cli import query as query_cli


def _app() -> typer.Typer:
    app = typer.Typer()
    for name in ("search", "similar"):  # two commands, so the first word names one
        app.command(name)(getattr(query_cli, name))
    return app


def test_search_prints_the_understood_line_and_notices(collection_dir: Path) -> None:
    runner = CliRunner()
    on = runner.invoke(_app(), ["search", str(collection_dir), "an angry man", "-k", "3", "--understand"])
    assert on.exit_code == 0, on.output
    text = " ".join(on.stdout.split())
    assert "Understood: gender: male ('man', key gender:male)" in text
    assert "Left to the model (no measured attribute): 'angry' (emotion)" in text
    assert "Notice: clsp-mini cannot rank emotion ('angry')" in text and "released CLSP" in text

    dropped = runner.invoke(_app(), ["search", str(collection_dir), "an angry man", "-k", "3", "--understand",
                                     "--drop", "gender:male", "--json"])
    page = json.loads(dropped.stdout)
    assert [(u["key"], u["status"]) for u in page["understood"]] == [("gender:male", "dropped")]
    off = runner.invoke(_app(), ["search", str(collection_dir), "an angry man", "-k", "3", "--no-understand", "--json"])
    page_off = json.loads(off.stdout)
    assert page_off["understood"] == [] and page_off["notices"][0]["property"] == "emotion"
    assert [h["id"] for h in page_off["hits"]] == [h["id"] for h in page["hits"]]
