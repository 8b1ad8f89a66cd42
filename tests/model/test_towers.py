"""Pooling masks, padding invariance, and pluggable transformers speech towers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchengine.model.towers import (
    build_speech_tower,
    lengths_to_mask,
    masked_mean,
    masked_mean_std,
)

from .conftest import tone


def test_masked_mean_ignores_padding():
    hidden = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    mask = lengths_to_mask(torch.tensor([2, 3]), 3)
    assert mask.tolist() == [[True, True, False], [True, True, True]]
    assert masked_mean(hidden, mask).squeeze(-1).tolist() == [2.0, 4.0]


def test_head_mean_pooling_maps_every_token_then_averages_real_tokens_only():
    from searchengine.model.heads import ProjectionHead, TokenBatch

    torch.manual_seed(0)
    head = ProjectionHead(4, 8).eval()
    hidden = torch.randn(2, 3, 4)
    hidden[0, 2] = 1e3  # padding: must change nothing
    mask = lengths_to_mask(torch.tensor([2, 3]), 3)
    with torch.no_grad():
        out = head(TokenBatch(hidden, mask))
        per_token = head.mlp(head.projection(hidden))  # every position, unnormalised
        expected = torch.nn.functional.normalize(torch.stack([per_token[0, :2].mean(0), per_token[1].mean(0)]), dim=-1)
        torch.testing.assert_close(out, expected)
        # not the head of the mean: the head is non-linear, so mapping each token first is a different model
        assert not torch.allclose(out, head(masked_mean(hidden, mask)), atol=1e-3)


def test_head_mean_text_embeddings_do_not_depend_on_batch_padding():
    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config
    from searchengine.model.heads import TokenBatch

    config = get_model_config("clsp-mini")
    config["text_tower"]["pooling"] = "head_mean"
    torch.manual_seed(0)
    model = CLSP(config).eval()
    short, long = "A low, calm man.", "A quiet woman speaking quickly in a large echoey hall, far from the microphone."
    with torch.inference_mode():
        prepared = model.text_tower.prepare([short, long])
        assert isinstance(model.text_tower(**prepared), TokenBatch)
        together = model.encode_text(**prepared)
        alone = model.encode_text(**model.text_tower.prepare([short]))
        torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=0)


def test_statistics_pooling_ignores_padding_and_keeps_spread():
    hidden = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [2.0], [2.0]]])
    pooled = masked_mean_std(hidden, lengths_to_mask(torch.tensor([2, 3]), 3))
    assert pooled.shape == (2, 2)
    assert pooled[:, 0].tolist() == [2.0, 2.0]  # same means...
    assert pooled[0, 1].item() == pytest.approx(1.0, abs=1e-3)  # ...but only the first clip varies
    assert pooled[1, 1].item() == pytest.approx(0.0, abs=1e-2)


def test_small_tower_output_width_follows_pooling():
    mean_tower = build_speech_tower({"type": "small", "width": 32, "conv_layers": 1, "pooling": "mean"})
    stats_tower = build_speech_tower({"type": "small", "width": 32, "conv_layers": 1, "pooling": "mean_std"})
    assert (mean_tower.output_dim, stats_tower.output_dim) == (32, 64)
    with torch.inference_mode():
        assert stats_tower(**stats_tower.prepare([tone(0.7, 150)])).shape == (1, 64)
    with pytest.raises(ValueError, match="pooling"):
        build_speech_tower({"type": "small", "pooling": "max"})


def test_modulation_spectrum_peaks_at_the_syllable_rate():
    """An envelope pulsing 4 times a second against one pulsing 8 times: each clip's largest
    modulation band holds its own rate, and the two spectra differ there."""
    from searchengine.model.towers import ModulationSpectrum

    modulation = ModulationSpectrum(14, frame_rate=100.0, n_mels=4)
    t = np.arange(500) / 100.0
    frames = torch.zeros(2, 500, 5)
    for row, rate in enumerate((4.0, 8.0)):
        frames[row, :, :4] = torch.from_numpy(np.log(1.5 + np.sin(2 * np.pi * rate * t))).float()[:, None]
    with torch.no_grad():
        shape = modulation(frames, torch.tensor([500, 500]))
    edges = modulation.edges
    for row, rate in enumerate((4.0, 8.0)):
        peak = int(shape[row].argmax())
        assert edges[peak] <= rate < edges[peak + 1]
    # padding to a longer batch changes nothing
    with torch.no_grad():
        padded = modulation(torch.cat([frames, torch.zeros(2, 300, 5)], dim=1), torch.tensor([500, 500]))
    assert torch.allclose(shape, padded, atol=1e-4)


def test_small_tower_embedding_does_not_depend_on_batch_padding(random_clsp_mini):
    tower = random_clsp_mini.speech_tower
    short, long = tone(1.3, 120), tone(3.1, 220)
    with torch.inference_mode():
        alone = tower(**tower.prepare([short]))
        padded = tower(**tower.prepare([short, long]))[0:1]
    assert torch.allclose(alone, padded, atol=1e-4)


def test_frontend_sees_pitch_and_loudness(random_clsp_mini):
    frontend = random_clsp_mini.speech_tower.frontend
    low, high = frontend(tone(1.0, 110)), frontend(tone(1.0, 220))
    n_mels = frontend.config.n_mels
    voiced = (low[:, n_mels + 1] > 0) & (high[:, n_mels + 1] > 0)
    assert voiced.mean() > 0.8
    # log2(F0 / 100 Hz) differs by one octave
    assert np.median(high[voiced, n_mels] - low[voiced, n_mels]) == pytest.approx(1.0, abs=0.05)
    # a coarser Praat step tracks the same pitch (each 10 ms frame takes the nearest 20 ms value)
    from searchengine.model.frontend import FrontendConfig, LogMelPitchFrontend

    coarse = LogMelPitchFrontend(FrontendConfig(pitch_step_ms=20.0))(tone(1.0, 220))
    assert coarse.shape == high.shape
    both = (coarse[:, n_mels + 1] > 0) & (high[:, n_mels + 1] > 0)
    assert both.mean() > 0.8
    assert np.median(np.abs(coarse[both, n_mels] - high[both, n_mels])) < 0.01
    quiet = frontend(tone(1.0, 110, amplitude=0.03))
    assert np.median(low[:, -1] - quiet[:, -1]) == pytest.approx(np.log(100), abs=0.1)  # 20 dB in power


def test_a_transformers_audio_encoder_plugs_in_as_speech_tower():
    from transformers import Wav2Vec2Config

    hf_config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
    )
    torch.manual_seed(0)
    tower = build_speech_tower({"type": "hf", "hf_config": hf_config.to_dict(), "random_init": True}).eval()
    assert tower.output_dim == 32
    a, b = tone(0.5, 150), tone(1.2, 300)
    with torch.inference_mode():
        alone = tower(**tower.prepare([a]))
        batched = tower(**tower.prepare([a, b]))
    assert batched.shape == (2, 32)
    assert torch.allclose(alone[0], batched[0], atol=1e-3)
