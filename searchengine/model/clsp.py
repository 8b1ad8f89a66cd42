"""The CLSP dual encoder: speech tower + text tower, a projection head each, learnable temperature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from searchengine.model.config import DEFAULT_INIT_LOGIT_SCALE
from searchengine.model.heads import ProjectionHead
from searchengine.model.towers import build_speech_tower, build_text_tower

#: CLIP's cap on the learned temperature (exp(4.6052) = 100); keeps the softmax from saturating.
MAX_LOGIT_SCALE = 4.6052


class CLSP(nn.Module):
    """Speech and text embeddings in one 512-d space, compared by inner product."""

    def __init__(self, config: dict[str, Any], text_model_dir: str | Path | None = None,
                 defer_text_weights: bool = False) -> None:
        """`defer_text_weights`: a frozen text tower loads its transformers model on first use
        (`towers.HFTextTower`), for inference that may never need it."""
        super().__init__()
        self.config = config
        embed_dim = int(config.get("embed_dim", 512))
        dropout = float(config.get("head_dropout", 0.1))
        self.speech_tower = build_speech_tower(config["speech_tower"])
        self.text_tower = build_text_tower(config["text_tower"], model_dir=text_model_dir,
                                           defer_weights=defer_text_weights)
        self.speech_head = ProjectionHead(self.speech_tower.output_dim, embed_dim, dropout)
        self.text_head = ProjectionHead(self.text_tower.output_dim, embed_dim, dropout)
        # Optional linear path from the modulation-spectrum bands (the last values of the pooled vector)
        # straight into the joint space: pace measured this way is the same for every voice, and a
        # linear map cannot tie it to voice identity the way the MLP head can.
        self.modulation_bands = int(config["speech_tower"].get("modulation_bands", 0))
        self.modulation_skip = (nn.Linear(self.modulation_bands, embed_dim)
                                if self.modulation_bands and config.get("modulation_skip") else None)
        init = float(config.get("init_logit_scale", DEFAULT_INIT_LOGIT_SCALE))
        self.logit_scale = nn.Parameter(torch.tensor(init))

    @property
    def embed_dim(self) -> int:
        return int(self.config.get("embed_dim", 512))

    def encode_speech(self, **speech_batch: torch.Tensor) -> torch.Tensor:
        """Prepared speech batch (see the tower's `prepare`) -> L2-normalised [B, 512]."""
        pooled = self.speech_tower(**speech_batch)
        if self.modulation_skip is None:
            return self.speech_head(pooled)
        return self.speech_head(pooled, self.modulation_skip(pooled[:, -self.modulation_bands :]))

    def encode_text(self, **text_batch: torch.Tensor) -> torch.Tensor:
        """Tokenised text batch -> L2-normalised [B, 512]."""
        return self.text_head(self.text_tower(**text_batch))

    def scale(self) -> torch.Tensor:
        """The multiplicative temperature exp(logit_scale), clamped like CLIP's."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def forward(self, speech_batch: dict[str, torch.Tensor], text_batch: dict[str, torch.Tensor]):
        return self.encode_speech(**speech_batch), self.encode_text(**text_batch), self.scale()
