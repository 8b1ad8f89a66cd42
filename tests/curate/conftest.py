"""A small generated corpus, indexed with attributes (quality, speaker clusters), for the curation
tests; and a real uvicorn server on it for the POST /export ones.

The model is CLSP_SEARCH_TEST_MODEL when set, else the bundled clsp-mini when its weights are
present, else clsp-mini's architecture with seeded random weights saved as a checkpoint: the
constraints under test (quality, speakers, duplicates) hold or fail whatever the ranking is, so an
untrained model checks them as well as a trained one, and these tests never have to skip.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
N_CLIPS = 12
VOICES = ("flite:slt", "flite:awb", "espeak-ng:en-us+m2", "espeak-ng:en-us+f4")
"""Few voices, several clips each: the per-speaker and diversity constraints need repeated speakers,
and twelve short clips keep indexing (with attributes) short. With seed 5 the generator gives awb
seven clips, slt four, m2 one (and f4 none)."""
UNLABELLED = "flite:slt"


@pytest.fixture(scope="session")
def curate_model_path(tmp_path_factory) -> str:
    from searchengine.model.registry import WEIGHTS_DIR

    if os.environ.get("CLSP_SEARCH_TEST_MODEL"):
        return os.environ["CLSP_SEARCH_TEST_MODEL"]
    if (WEIGHTS_DIR / "clsp-mini" / "model.safetensors").is_file():
        return "clsp-mini"
    import torch

    from searchengine.model import save_checkpoint
    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("curate-model")
    save_checkpoint(CLSP(get_model_config("clsp-mini")).eval(), directory)
    return str(directory)


@pytest.fixture(scope="session")
def curate_collection(tmp_path_factory, curate_model_path: str) -> Path:
    from indexer.pipeline import run_index
    from searchengine.model import load_model

    corpus = tmp_path_factory.mktemp("curate-corpus")
    cmd = [sys.executable, "-m", "searchengine.cli", "corpus", "generate", str(corpus), "--n", str(N_CLIPS),
           "--seed", "5", "-q"]
    for voice in VOICES:
        cmd += ["--voices", voice]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    label_speakers(corpus / "manifest.jsonl")
    path = tmp_path_factory.mktemp("curate-collection") / "c"
    encoder = load_model(curate_model_path, device="cpu")
    run_index(corpus / "manifest.jsonl", path, encoder, workers=0, progress=False, model_spec=curate_model_path,
              args={"model": curate_model_path})
    return path


def label_speakers(manifest: Path) -> None:
    """Give the clips of every voice but UNLABELLED a manifest `speaker`, as a partly labelled corpus
    would have: the labelled ones are grouped by label, the others by estimated speaker cluster, so
    both ways of telling speakers apart are exercised end to end."""
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    for rec in records:
        if rec["voice"] != UNLABELLED:
            rec["speaker"] = rec["voice"]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="session")
def curate_searcher(curate_collection: Path, curate_model_path: str):
    from searchengine.search import Searcher

    s = Searcher.open(curate_collection, model=curate_model_path, device="cpu")
    yield s
    s.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def curate_client(curate_collection: Path, curate_searcher) -> Iterator[httpx.Client]:
    """The real app under uvicorn on a loopback port, sharing the session's searcher."""
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    app = create_app(curate_collection, Settings(), searcher=curate_searcher)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)
