"""`clsp-search search | similar | export` on the real collection, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from cli import query as query_cli


def _app() -> typer.Typer:
    app = typer.Typer()
    for name in ("search", "similar", "export"):
        app.command(name)(getattr(query_cli, name))
    return app


def test_search_json_matches_the_library(collection_dir: Path, searcher, encoder) -> None:
    from searchengine.search import SearchOptions

    result = CliRunner().invoke(_app(), ["search", str(collection_dir), "a whispering woman", "-k", "5",
                                         "--filter", "duration > 2", "--filter", "gender in (female, male)", "--json"])
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    expect = searcher.search_text("a whispering woman", SearchOptions(top_k=5, filter=[
        {"field": "duration", "op": ">", "value": 2}, {"field": "gender", "op": "in", "value": ["female", "male"]}]))
    assert [h["id"] for h in page["hits"]] == [h.id for h in expect.hits]
    assert all(h["clip"]["duration"] > 2 for h in page["hits"])


def test_table_output_similar_and_errors(collection_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(_app(), ["search", str(collection_dir), "a deep slow voice", "-k", "3"])
    assert table.exit_code == 0 and "results from speech, global, fine" in table.stdout
    similar = runner.invoke(_app(), ["similar", str(collection_dir), "4", "--json", "-k", "3"])
    assert similar.exit_code == 0 and 4 not in [h["id"] for h in json.loads(similar.stdout)["hits"]]
    bad = runner.invoke(_app(), ["search", str(collection_dir), "x", "--filter", "durtion > 3"])
    assert bad.exit_code == 2 and "unknown field 'durtion'" in bad.output
    missing = runner.invoke(_app(), ["similar", str(collection_dir), "99999"])
    assert missing.exit_code == 2 and "no clip with id 99999" in missing.output
    nowhere = runner.invoke(_app(), ["search", str(tmp_path / "none"), "x"])
    assert nowhere.exit_code == 2 and "not a collection" in nowhere.output


def test_export_writes_manifest_lines(collection_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "picks.jsonl"
    result = CliRunner().invoke(_app(), ["export", str(collection_dir), "a calm older man", "-n", "4", "-o", str(out),
                                         "--filter", "gender = male"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert 1 <= len(rows) <= 4 and all(r["gender"] == "male" and Path(r["path"]).is_file() for r in rows)
    csv_out = tmp_path / "picks.csv"
    assert CliRunner().invoke(_app(), ["export", str(collection_dir), "a man", "-n", "3", "-o", str(csv_out)]).exit_code == 0
    assert csv_out.read_text().splitlines()[0].startswith("id,path,")
