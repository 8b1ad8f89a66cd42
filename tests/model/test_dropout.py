"""Packed dropout masks: nn.Dropout's regularisation from a quarter of the random numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from searchengine.model.dropout import PackedDropout, keep_mask, use_packed_dropout


def test_every_element_is_kept_with_probability_one_minus_p_in_every_lane():
    torch.manual_seed(0)
    mask = keep_mask((8, 250_000), 0.1)
    assert mask.dtype == torch.bool and mask.shape == (8, 250_000)
    assert abs(mask.float().mean().item() - 0.9) < 0.002
    flat = mask.view(-1)
    for lane in range(4):  # the four elements sharing one random word are each kept at the same rate
        assert abs(flat[lane::4].float().mean().item() - 0.9) < 0.003
    # Neighbours are independent: both kept at (1 - p)^2.
    assert abs((flat[0::4] & flat[1::4]).float().mean().item() - 0.81) < 0.004
    torch.manual_seed(0)
    assert torch.equal(keep_mask((8, 250_000), 0.1), mask)  # repeatable for a seed
    assert keep_mask((3, 5), 0.0).all() and keep_mask((7,), 0.5).shape == (7,)


def test_packed_dropout_scales_what_it_keeps_and_is_the_identity_in_eval():
    x = torch.randn(64, 125, 192, requires_grad=True)
    layer = PackedDropout(0.1)
    torch.manual_seed(1)
    y = layer(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.1) < 0.003
    assert torch.allclose(y[kept], x[kept] / 0.9)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.9)  # the gradient flows through kept elements only
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(PackedDropout(0.0).train()(x), x)
    half = PackedDropout(0.1).train()(x.detach().bfloat16())
    assert half.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        PackedDropout(1.0)


def test_replacing_dropout_keeps_the_state_dict_and_the_eval_output():
    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config

    plain_config = get_model_config("clsp-mini")
    plain_config.pop("fast_dropout", None)
    plain = CLSP(plain_config).eval()
    packed = CLSP({**plain_config, "fast_dropout": True}).eval()
    assert not any(isinstance(m, PackedDropout) for m in plain.modules())
    for part in (packed.speech_tower, packed.speech_head, packed.text_head):
        assert any(isinstance(m, PackedDropout) for m in part.modules())
        assert not any(type(m) is nn.Dropout for m in part.modules())
    assert packed.state_dict().keys() == plain.state_dict().keys()
    packed.load_state_dict(plain.state_dict())
    frames = torch.randn(2, 300, plain.speech_tower.frontend_config.n_features)
    lengths = torch.tensor([300, 200])
    with torch.inference_mode():
        assert torch.equal(packed.encode_speech(frames=frames, lengths=lengths),
                           plain.encode_speech(frames=frames, lengths=lengths))
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Sequential(nn.Dropout(0.3)))
    assert use_packed_dropout(net) == 2 and use_packed_dropout(net) == 0
    assert [m.p for m in net.modules() if isinstance(m, PackedDropout)] == [0.2, 0.3]
