"""Waveform preparation shared by every encoder: mono mixdown and resampling to 16 kHz.

Encoders accept audio at any sample rate and channel layout because callers (the indexer, the API,
notebooks) should not have to know what a model was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from searchengine.audio import SAMPLE_RATE as MODEL_SAMPLE_RATE
from searchengine.audio import resample

__all__ = ["MODEL_SAMPLE_RATE", "as_waveform_list", "prepare_waveforms", "resample", "to_mono"]


def to_mono(waveform: Any) -> np.ndarray:
    """Mix a 1-D or 2-D waveform down to float32 mono.

    A 2-D array is taken to hold channels on its shorter axis ([T, C] as soundfile returns, or
    [C, T] as torch code tends to use); the channels are averaged.
    """
    array = np.asarray(waveform.detach().cpu().numpy() if hasattr(waveform, "detach") else waveform)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 1:
        return array
    if array.ndim == 2:
        channel_axis = 0 if array.shape[0] <= array.shape[1] else 1
        return array.mean(axis=channel_axis).astype(np.float32)
    raise ValueError(f"a waveform must be 1-D or 2-D (samples, channels), got shape {array.shape}")


def as_waveform_list(waveforms: Any) -> list[Any]:
    """Normalise the `waveforms` argument of the encoders to a list of single waveforms.

    Accepted: one 1-D waveform; a 2-D array/tensor of equal-length waveforms [N, T]; or any sequence of
    waveforms (each 1-D, or 2-D multichannel).
    """
    if hasattr(waveforms, "ndim"):
        if waveforms.ndim == 1:
            return [waveforms]
        if waveforms.ndim == 2:
            return [row for row in waveforms]
        raise ValueError(f"expected a waveform or a batch [N, T], got shape {tuple(waveforms.shape)}")
    if isinstance(waveforms, Sequence):
        return list(waveforms)
    raise TypeError(f"cannot read waveforms from {type(waveforms).__name__}")


def prepare_waveforms(waveforms: Any, sample_rate: int) -> list[np.ndarray]:
    """Mono, 16 kHz, float32 waveforms ready for any speech tower."""
    prepared = []
    for waveform in as_waveform_list(waveforms):
        mono = to_mono(waveform)
        if mono.size == 0:
            raise ValueError("cannot embed an empty waveform")
        prepared.append(np.ascontiguousarray(resample(mono, sample_rate)))
    return prepared
