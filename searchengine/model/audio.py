"""Waveform preparation shared by every encoder: mono mixdown and resampling to 16 kHz.

Encoders accept audio at any sample rate and channel layout because callers (the indexer, the API,
notebooks) should not have to know what a model was trained on. The mixdown and the resampler are
the ones decoding uses (searchengine.audio), so a file and the same samples passed in as an array
become the same model input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from searchengine.audio import SAMPLE_RATE as MODEL_SAMPLE_RATE
from searchengine.audio import resample, to_mono

__all__ = ["MODEL_SAMPLE_RATE", "as_waveform_list", "prepare_waveforms", "resample", "to_mono"]


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
