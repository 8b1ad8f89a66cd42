"""A memory of the text tower's token states from training captions, that unfamiliar words lean on.

A text head trained per token (`head_mean` pooling) learns a mapping for the token states its
training captions produced. A word it never saw ("brisk" where training said "quick") has a state of
its own, and the head's mapping away from the states it learned is not reliable. The frozen tower
already knows synonyms, though: the nearest training-caption token states of an unseen word usually
belong to words with the same meaning. So every token state is blended with a soft nearest-neighbour
average of k-means centroids of the training captions' token states, before the head maps it:

    state' = (1 - weight) * state + weight * sum_j softmax(-(d_j - d_min) / (temperature * scale)) * c_j

over its `neighbours` nearest centroids c_j at squared distances d_j, where `scale` is the median
squared distance of training token states to their nearest centroid. A word the head knows moves
little (its neighbours are its own states); an unknown one is pulled toward known words that the
tower puts next to it. The head is trained on blended states, so training and search see the same
input. The centroids are fitted by `clsp-search tune-text` (training/kmeans.py). Measured in the model card.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

#: Settings of the memory in a text tower's config (`"token_memory": {...}`), with their defaults.
DEFAULTS: dict[str, Any] = {"size": 4096, "neighbours": 8, "weight": 0.5, "temperature": 0.5}


class TokenMemory(nn.Module):
    """Fixed centroids of training token states ([size, dim] buffer, stored in the checkpoint)."""

    def __init__(self, dim: int, settings: dict[str, Any]) -> None:
        super().__init__()
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown token_memory settings {sorted(unknown)} (expected some of {', '.join(DEFAULTS)})")
        self.settings = {**DEFAULTS, **settings}
        self.size = int(self.settings["size"])
        self.neighbours = min(int(self.settings["neighbours"]), self.size)
        self.weight = float(self.settings["weight"])
        self.temperature = float(self.settings["temperature"])
        if self.size < 1 or self.neighbours < 1 or not 0.0 <= self.weight <= 1.0 or self.temperature <= 0:
            raise ValueError(f"token_memory needs size and neighbours >= 1, weight in [0, 1] and temperature > 0; "
                             f"got {self.settings}")
        self.register_buffer("centroids", torch.zeros(self.size, dim))
        self.register_buffer("scale", torch.ones(()))

    def set_centroids(self, centroids: np.ndarray | torch.Tensor, scale: float) -> None:
        centroids = torch.as_tensor(np.asarray(centroids, dtype=np.float32))
        if tuple(centroids.shape) != tuple(self.centroids.shape):
            raise ValueError(f"expected centroids of shape {tuple(self.centroids.shape)}, got {tuple(centroids.shape)}")
        self.centroids.copy_(centroids)
        self.scale.fill_(float(scale))

    def forward(self, states: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """Blend token states [N, dim] with their soft nearest centroids; chunked to bound memory. Rows are
        blended independently, so the chunk changes only speed (1024 rows keep the [chunk, size] distance
        block in cache: 1.65x faster than 8192 on a 2-core CPU). Power-of-two chunks give the same bits;
        a chunk of odd size may take another BLAS kernel and differ in float32 rounding."""
        with torch.autocast(device_type=states.device.type, enabled=False):  # distances cancel: keep float32
            return self._blend(states, chunk)

    def _blend(self, states: torch.Tensor, chunk: int) -> torch.Tensor:
        out = []
        centroids = self.centroids.float()
        squared_norms = (centroids * centroids).sum(dim=1)
        for start in range(0, states.shape[0], chunk):
            x = states[start : start + chunk].float()
            distances = (x * x).sum(dim=1, keepdim=True) - 2.0 * x @ centroids.T + squared_norms
            nearest, index = distances.topk(self.neighbours, dim=1, largest=False)  # ascending
            weights = torch.softmax(-(nearest - nearest[:, :1]) / (self.temperature * self.scale), dim=1)
            blended = (weights.unsqueeze(-1) * centroids[index]).sum(dim=1)
            out.append(((1.0 - self.weight) * x + self.weight * blended).to(states.dtype))
        if not out:
            return states
        return torch.cat(out)
