"""A small generated corpus, indexed with attributes (quality, speaker clusters), for the curation
tests; and a real uvicorn server on it for the POST /export ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
def curate_model_path(model_spec: str) -> str:
    return model_spec


@pytest.fixture(scope="session")
def curate_collection(tmp_path_factory, index_corpus) -> Path:
    corpus = tmp_path_factory.mktemp("curate-corpus")
    cmd = [sys.executable, "-m", "cli", "corpus", "generate", str(corpus), "--n", str(N_CLIPS),
           "--seed", "5", "-q"]
    for voice in VOICES:
        cmd += ["--voices", voice]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    label_speakers(corpus / "manifest.jsonl")
    # With measured attributes: quality, speaker clusters and ranges are what curation works on.
    return index_corpus(corpus, "curate-collection", attributes=True)


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


@pytest.fixture(scope="session")
def curate_client(curate_collection: Path, curate_searcher, live_server) -> Iterator[httpx.Client]:
    """The real app under uvicorn on a loopback port, sharing the session's searcher."""
    from api.app import create_app
    from api.settings import Settings

    app = create_app(curate_collection, Settings(), searcher=curate_searcher)
    with live_server(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
