"""Dropout whose random mask costs a quarter of the random numbers: for training on a small CPU.

On CPU, `nn.Dropout` draws one random number per element, and on the 2-core machine that draw is
what dropout costs: about 9 ms for the [64, 125, 192] activations of one speech-tower block, four of
them in every step-1 training step (benchmarks/RESULTS.md, "Training dropout"). Here one 64-bit
random word makes the mask of four elements: each 16-bit lane of it, its top bit cleared, is a uniform 15-bit number, and an
element is kept when its number is at least p * 32768. Every element is still dropped independently
with probability p (rounded to 1/32768) and the kept ones scaled by 1 / (1 - p), as `nn.Dropout`
does; only the random stream differs, so a model trained with it is a different draw of the same
recipe, and inference (eval mode) is unchanged. Off CPU, `nn.functional.dropout` is used. A model
config turns it on with `"fast_dropout": true` (`train --config clsp-mini-fast-dropout`); clsp-mini's
bundled recipe does not (its model card, "Tried and not shipped: packed dropout masks").
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Each mask lane is a uniform integer in [0, LANE_VALUES).
LANE_VALUES = 1 << 15


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A boolean CPU mask of `shape`, each element True with probability 1 - p (p rounded to 1/32768),
    drawn from torch's global generator (so `torch.manual_seed` makes it repeatable)."""
    count = math.prod(shape)
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_()  # uniform on [0, 2**63)
    lanes = words.view(torch.int16)[:count] & (LANE_VALUES - 1)  # four 15-bit uniform numbers per word
    return (lanes >= round(p * LANE_VALUES)).view(shape)


class PackedDropout(nn.Module):
    """`nn.Dropout(p)` with masks from `keep_mask`: the same regularisation, a quarter of the draws."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, training=True)
        scale = torch.tensor(1.0 / (1.0 - self.p), dtype=x.dtype)
        return x * keep_mask(x.shape, self.p).to(x.dtype) * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_packed_dropout(module: nn.Module) -> int:
    """Replace every `nn.Dropout` inside `module` by a `PackedDropout` of the same p, in place; returns
    how many were replaced. Dropout holds no weights, so state dicts and checkpoints are unchanged."""
    replaced = 0
    for parent in module.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, PackedDropout(child.p))
                replaced += 1
    return replaced
