"""CLSP's projection heads: Linear-ReLU-Linear to the shared size, then a 512-512-512 MLP, L2 norm.

Both branches use the same head shape (as the paper), so speech and text land in one space where the
inner product is the cosine similarity.

A head maps one pooled vector per item, or, given `TokenBatch` (a text tower with `head_mean` pooling),
every token state on its own before the mean: a small head over a frozen encoder then reads each word in
its context rather than the average of a sentence's words, in which the few words that describe a voice
are outweighed by the frame around them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class TokenBatch(NamedTuple):
    """Padded token states [B, T, D] and their mask [B, T] (true on real tokens)."""

    hidden: torch.Tensor
    mask: torch.Tensor


class ProjectionHead(nn.Module):
    def __init__(self, input_dim: int, embed_dim: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.projection = nn.Sequential(
            nn.Linear(input_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim)
        )
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(embed_dim, embed_dim)
        )

    def forward(self, pooled: torch.Tensor | TokenBatch, residual: torch.Tensor | None = None) -> torch.Tensor:
        """`pooled` [B, input_dim], or a `TokenBatch` to map per token and average over real tokens.
        `residual` ([B, embed_dim]) is added before normalisation: a linear path into the space."""
        out = self._token_mean(pooled) if isinstance(pooled, TokenBatch) else self.mlp(self.projection(pooled))
        return nn.functional.normalize(out if residual is None else out + residual, dim=-1)

    def _token_mean(self, tokens: TokenBatch) -> torch.Tensor:
        """Head over real tokens only (padding costs nothing), then the per-item mean [B, embed_dim]."""
        mask = tokens.mask.bool()
        mapped = self.mlp(self.projection(tokens.hidden[mask]))  # [real tokens, E], row-major like nonzero()
        rows = mask.nonzero()[:, 0]
        summed = mapped.new_zeros(mask.shape[0], mapped.shape[-1]).index_add_(0, rows, mapped)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1).to(summed.dtype)
