"""Shared fixtures: one generated corpus and one loaded model for the whole indexer test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[2]
N_CLIPS = 32
MODEL = os.environ.get("CLSP_SEARCH_TEST_MODEL", "clsp-mini")  # the bundled model unless told otherwise


@pytest.fixture(scope="session")
def corpus(make_corpus) -> Path:
    """A small generated style corpus: audio/*.wav + manifest.jsonl, made by the real generator."""
    return make_corpus(N_CLIPS, 3)


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


def expected_text_runtime() -> str:
    """Where captions run by default on this machine: OpenVINO bf16 where the CPU has AMX, else ONNX
    Runtime fp32 (searchengine/model/onnx_text.py); named here independently of the encoder's report."""
    from searchengine import openvino_cpu

    core = openvino_cpu.core()
    return "openvino bf16" if core is not None and openvino_cpu.fast_bf16(core) else "onnx float32"
