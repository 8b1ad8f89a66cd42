"""LAION CLAP through transformers' `ClapModel`, as a baseline to compare CLSP against.

CLAP was trained on general audio with captions about sound events, not speaking style; the CLSP
paper reports all CLAP variants below 0.05 R@1 on style retrieval. It is here so a user can measure
that on their own data with `clsp-search eval --model PATH_TO_CLAP`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from searchengine.model.audio import resample
from searchengine.model.checkpoint import CheckpointError, file_checksum
from searchengine.model.encoder import Encoder


def _embedding(output) -> torch.Tensor:
    """transformers returns a tensor (4.x) or an output object with pooler_output (5.x)."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


class ClapEncoder(Encoder):
    """Encoder over a local CLAP directory (e.g. `huggingface-cli download laion/clap-htsat-unfused`)."""

    def __init__(self, directory: str | Path, device: torch.device, name: str | None = None) -> None:
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        directory = Path(directory)
        weights = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
        if not weights:
            raise CheckpointError(f"{directory} has config.json but no model.safetensors; expected a CLAP model")
        try:
            self.model = ClapModel.from_pretrained(str(directory)).to(device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(directory))
            self.feature_extractor = ClapFeatureExtractor.from_pretrained(str(directory))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load CLAP from {directory} (expected model, tokenizer and "
                                  f"preprocessor_config.json): {exc}") from exc
        self.device = device
        self.name = Path(name).name if name and Path(name).exists() else (name or directory.name)
        self.model_id = f"{self.name}@{file_checksum(*weights)}"
        self.dim = int(self.model.config.projection_dim)

    def _speech_batch(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        rate = self.feature_extractor.sampling_rate
        audio = [resample(w, 16000, rate) for w in waveforms]
        inputs = self.feature_extractor(audio, sampling_rate=rate, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_features", "is_longer")}
        return _embedding(self.model.get_audio_features(**inputs))

    def _text_batch(self, texts: list[str]) -> torch.Tensor:
        inputs = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        return _embedding(self.model.get_text_features(**inputs))

    def _logit_scale(self) -> float:
        return float(self.model.logit_scale_a.exp())
