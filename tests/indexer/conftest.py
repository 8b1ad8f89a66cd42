"""Shared fixtures: one generated corpus and one loaded model for the whole indexer test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[2]
N_CLIPS = 32
MODEL = os.environ.get("CLSP_SEARCH_TEST_MODEL", "clsp-mini")  # the bundled model unless told otherwise


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A small generated style corpus: audio/*.wav + manifest.jsonl, made by the real generator."""
    out = tmp_path_factory.mktemp("corpus")
    cmd = [sys.executable, "-m", "searchengine.cli", "corpus", "generate", str(out), "--n", str(N_CLIPS),
           "--seed", "3", "--split-by-voice"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def encoder():
    from searchengine.model import CheckpointError, load_model

    try:
        return load_model(MODEL, device="cpu")
    except CheckpointError as exc:
        pytest.skip(f"model {MODEL} is not available: {exc}")


def cli_app() -> typer.Typer:
    """The `index` command on a Typer app of its own, as `clsp-search index` runs it."""
    from indexer.cli import index

    app = typer.Typer()
    app.command()(index)
    return app


INDEX_SCRIPT = (
    "import sys, typer; sys.path.insert(0, {repo!r}); from indexer.cli import index; "
    "app = typer.Typer(); app.command()(index); app()"
)


def index_cmd(*args: str) -> list[str]:
    """A subprocess command line running `clsp-search index ARGS` (for tests that kill it)."""
    return [sys.executable, "-c", INDEX_SCRIPT.format(repo=str(REPO)), *args]
