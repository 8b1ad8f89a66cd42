"""`clsp-search models download` and `models list`, for real where it can be done without the hub:
the download against a dead proxy (a closed port), `list` over a directory laid out
as a download leaves it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from searchengine.model.catalogue import RECORD_FILE
from searchengine.model.download import is_network_error, sha256

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "fixtures" / "paraspeechclap_standin"


def test_download_without_network_says_so_and_how_to_copy_a_directory(tmp_path):
    closed = socket.socket()  # a port that was free a moment ago: connections to it are refused
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "hf"), HTTP_PROXY=url, HTTPS_PROXY=url, http_proxy=url, https_proxy=url,
               ALL_PROXY=url, NO_PROXY="", no_proxy="", PYTHONPATH=str(ROOT))
    target = tmp_path / "CLSP"
    result = subprocess.run([sys.executable, "-m", "cli.main", "models", "download", "clsp", "--dir", str(target)],
                            env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert result.returncode == 3, result.stderr[-2000:]
    assert "no network" in result.stderr
    assert f"clsp-search models download clsp --dir {target}" in result.stderr
    assert "copy that whole directory here" in result.stderr and f"--model {target}" in result.stderr
    assert not target.exists()  # nothing half-written


def test_unknown_model_and_help():
    runner = CliRunner()
    unknown = runner.invoke(app, ["models", "download", "clap-nonsense"])
    assert unknown.exit_code == 2 and "known: clsp, paraspeechclap" in unknown.output
    assert runner.invoke(app, ["models", "download", "--help"]).exit_code == 0


def test_list_shows_bundled_and_downloaded_models_with_the_ids_they_load_as(tmp_path, monkeypatch):
    from searchengine.model import load_model

    directory = tmp_path / "paraspeechclap"
    shutil.copytree(STANDIN, directory)
    checkpoint = "paraspeechclap-combined.pth.tar"
    (directory / RECORD_FILE).write_text(json.dumps({"model": "paraspeechclap", "sources": [
        {"repo": "ajd12342/paraspeechclap-combined", "revision": "0123456789abcdef", "path": ".",
         "files": {checkpoint: sha256(directory / checkpoint)}}]}))
    monkeypatch.setenv("CLSP_SEARCH_MODELS", str(tmp_path))
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    encoder = load_model("paraspeechclap", device="cpu")  # by name, from $CLSP_SEARCH_MODELS
    assert encoder.dim == 768
    assert f"{encoder.model_id}  (--model {directory}; ajd12342/paraspeechclap-combined@0123456789ab)" in result.output
    assert "clsp-mini@" in result.output


def test_network_errors_are_recognised_through_their_causes():
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError as inner:
            raise RuntimeError("hub request failed") from inner
    except RuntimeError as outer:
        assert is_network_error(outer)
    assert not is_network_error(ValueError("404: repository not found"))
