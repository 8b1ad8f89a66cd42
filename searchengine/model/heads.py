"""CLSP's projection heads: Linear-ReLU-Linear to the shared size, then a 512-512-512 MLP, L2 norm.

Both branches use the same head shape (as the paper), so speech and text land in one space where the
inner product is the cosine similarity.
"""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    def __init__(self, input_dim: int, embed_dim: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        self.projection = nn.Sequential(
            nn.Linear(input_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, embed_dim)
        )
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(embed_dim, embed_dim)
        )

    def forward(self, pooled: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """`residual` ([B, embed_dim]) is added before normalisation: a linear path into the space."""
        out = self.mlp(self.projection(pooled))
        return nn.functional.normalize(out if residual is None else out + residual, dim=-1)
