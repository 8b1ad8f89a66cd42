"""Shared builders for model tests: small real models, built from configs, no downloads."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tone(seconds: float, frequency: float, sample_rate: int = 16000, amplitude: float = 0.3) -> np.ndarray:
    """A harmonic-rich, slightly modulated tone: voiced-speech-like enough for the pitch tracker."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = frequency * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (amplitude * wave / 2).astype(np.float32)


@pytest.fixture(scope="session")
def random_clsp_mini():
    """clsp-mini's architecture with freshly initialised (seeded) heads and speech tower."""
    import torch

    from searchengine.model.clsp import CLSP
    from searchengine.model.config import get_model_config

    torch.manual_seed(0)
    return CLSP(get_model_config("clsp-mini")).eval()
