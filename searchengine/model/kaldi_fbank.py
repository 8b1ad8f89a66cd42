"""Kaldi-compatible log mel filter bank in pure torch, with torchaudio's `compliance.kaldi.fbank` call.

Why: the released CLSP computes its 128-bin fbank with `torchaudio.compliance.kaldi.fbank` inside its
own modeling code, and no torchaudio build loads with the CPU torch this project installs. This
module is the same computation (Kaldi's `compute-fbank-feats`: frames with reflected edges when
`snip_edges=False`, DC removal, pre-emphasis, Povey window, power spectrum, triangular mel bins on
Kaldi's mel scale, natural log floored at float epsilon), and `torchaudio_shim` lets remote
code that does `from torchaudio.compliance import kaldi` run unchanged when no real torchaudio
imports. Agreement with kaldi-native-fbank (itself Kaldi-exact) is checked in
tests/model/test_kaldi_fbank.py against stored reference values; figures in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import importlib.util
import math
import sys
import types
from collections.abc import Iterator

import torch

MILLISECONDS_TO_SECONDS = 0.001
WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "blackman")


def mel_scale(freq: torch.Tensor | float) -> torch.Tensor | float:
    """Kaldi's mel scale: 1127 ln(1 + f / 700)."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


@functools.lru_cache(maxsize=16)
def mel_banks(num_bins: int, padded_window_size: int, sample_frequency: float, low_freq: float,
              high_freq: float) -> torch.Tensor:
    """[num_bins, padded_window_size // 2 + 1] triangular filters, as Kaldi's MelBanks (no VTLN).

    `high_freq <= 0` counts down from the Nyquist frequency (Kaldi's convention: -400 = 7600 Hz at 16 kHz)."""
    num_fft_bins = padded_window_size // 2
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad mel range low_freq={low_freq}, high_freq={high_freq} for nyquist {nyquist}")
    fft_bin_width = sample_frequency / padded_window_size
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + index * delta, mel_low + (index + 1) * delta, mel_low + (index + 2) * delta
    mel = mel_scale(fft_bin_width * torch.arange(num_fft_bins, dtype=torch.float64)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    # the Nyquist bin never falls inside a filter; cached, so callers must not modify it in place
    return torch.nn.functional.pad(banks, (0, 1))


def feature_window(window_type: str, size: int, blackman_coeff: float, dtype: torch.dtype) -> torch.Tensor:
    """Kaldi's analysis windows (symmetric, as FeatureWindowFunction builds them)."""
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype)
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype).pow(0.85)
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype)
    if window_type == "blackman":
        a = 2 * math.pi / (size - 1)
        n = torch.arange(size, dtype=dtype)
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    raise ValueError(f"window_type {window_type!r} is not one of {', '.join(WINDOW_TYPES)}")


def frames(signal: torch.Tensor, size: int, shift: int, snip_edges: bool) -> torch.Tensor:
    """[num_frames, size] windows of a 1-D signal, Kaldi's framing: with `snip_edges=False` frame i is
    centred on i * shift + shift / 2 and the signal is reflected at both ends."""
    n = signal.shape[0]
    if snip_edges:
        if n < size:
            return signal.new_empty((0, size))
        count = 1 + (n - size) // shift
    else:
        count = (n + shift // 2) // shift
        if count == 0:
            return signal.new_empty((0, size))
        # Kaldi's ExtractWindow: sample -1 is x[0], -2 is x[1], sample n is x[n-1] ..., repeated for
        # signals shorter than the reflection
        begin = torch.arange(count, device=signal.device) * shift + shift // 2 - size // 2
        index = (begin[:, None] + torch.arange(size, device=signal.device)[None, :]) % (2 * n)
        return signal[torch.where(index >= n, 2 * n - 1 - index, index)]
    return signal.as_strided((count, size), (shift * signal.stride(0), signal.stride(0)))


def fbank(
    waveform: torch.Tensor,
    blackman_coeff: float = 0.42,
    channel: int = -1,
    dither: float = 0.0,
    energy_floor: float = 1.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    high_freq: float = 0.0,
    htk_compat: bool = False,
    low_freq: float = 20.0,
    min_duration: float = 0.0,
    num_mel_bins: int = 23,
    preemphasis_coefficient: float = 0.97,
    raw_energy: bool = True,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    sample_frequency: float = 16000.0,
    snip_edges: bool = True,
    subtract_mean: bool = False,
    use_energy: bool = False,
    use_log_fbank: bool = True,
    use_power: bool = True,
    vtln_high: float = -500.0,
    vtln_low: float = 100.0,
    vtln_warp: float = 1.0,
    window_type: str = "povey",
) -> torch.Tensor:
    """`torchaudio.compliance.kaldi.fbank`: [C, N] (or [N]) waveform -> [frames, num_mel_bins (+1)].

    Same arguments and defaults; frame lengths in milliseconds. VTLN warping (`vtln_warp != 1`) is not
    implemented and is refused rather than ignored."""
    del vtln_high, vtln_low  # used only with warping
    if vtln_warp != 1.0:
        raise NotImplementedError("fbank: VTLN warping (vtln_warp != 1.0) is not implemented")
    if waveform.dim() == 2:
        waveform = waveform[max(channel, 0)]
    elif waveform.dim() != 1:
        raise ValueError(f"fbank: waveform must be [channels, samples] or [samples], got {tuple(waveform.shape)}")
    dtype = waveform.dtype if waveform.is_floating_point() else torch.float32
    waveform = waveform.to(dtype)
    shift = int(sample_frequency * frame_shift * MILLISECONDS_TO_SECONDS)
    size = int(sample_frequency * frame_length * MILLISECONDS_TO_SECONDS)
    padded = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    if size < 2 or size > waveform.shape[0] and snip_edges:
        raise ValueError(f"fbank: a {waveform.shape[0]}-sample signal is shorter than one {size}-sample frame")
    if waveform.shape[0] < min_duration * sample_frequency:
        return waveform.new_empty((0, num_mel_bins + int(use_energy)))
    eps = torch.finfo(dtype).eps
    x = frames(waveform, size, shift, snip_edges)
    if dither != 0.0:
        x = x + dither * torch.randn_like(x)
    if remove_dc_offset:
        x = x - x.mean(dim=1, keepdim=True)
    if raw_energy:
        energy = x.pow(2).sum(1).clamp(min=eps).log()
    if preemphasis_coefficient != 0.0:
        previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)
        x = x - preemphasis_coefficient * previous
    x = x * feature_window(window_type, size, blackman_coeff, dtype).to(x.device)
    if padded != size:
        x = torch.nn.functional.pad(x, (0, padded - size))
    if not raw_energy:
        energy = x.pow(2).sum(1).clamp(min=eps).log()
    # |X|^2 as re^2 + im^2: no square root taken only to be squared again
    power = torch.view_as_real(torch.fft.rfft(x)).pow(2).sum(-1)
    spectrum = power if use_power else power.sqrt()
    banks = mel_banks(num_mel_bins, padded, sample_frequency, low_freq, high_freq).to(device=x.device, dtype=dtype)
    features = spectrum @ banks.T
    if use_log_fbank:
        features = features.clamp(min=eps).log()
    if use_energy:
        if energy_floor > 0.0:
            energy = torch.clamp(energy, min=math.log(energy_floor))
        column = energy.unsqueeze(1)
        features = torch.cat([features, column] if htk_compat else [column, features], dim=1)
    if subtract_mean:
        features = features - features.mean(dim=0, keepdim=True)
    return features


def torchaudio_importable() -> bool:
    """Whether a real torchaudio is installed (then it is left alone)."""
    module = sys.modules.get("torchaudio")
    if module is not None:
        return not getattr(module, "__clsp_search_shim__", False)
    return importlib.util.find_spec("torchaudio") is not None


@contextlib.contextmanager
def torchaudio_shim() -> Iterator[bool]:
    """While building a model: `torchaudio.compliance.kaldi.fbank` importable when no torchaudio is.

    Scoped, not permanent: transformers asks whether torchaudio is installed, and code that binds
    `fbank` (or the `torchaudio` module) at import keeps it after the shim leaves `sys.modules`. Only
    the fbank the released CLSP calls is offered; any other torchaudio attribute is an AttributeError
    that says so. Yields True when the shim is in place (False: a real torchaudio is installed)."""
    if torchaudio_importable():
        yield False
        return
    names = ("torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi")
    modules = {name: types.ModuleType(name) for name in names}
    for name, module in modules.items():
        module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=name != names[-1])
        module.__clsp_search_shim__ = True  # type: ignore[attr-defined]

    def missing(name: str):
        raise AttributeError(
            f"torchaudio.{name}: torchaudio is not installed (no build loads with the CPU torch); "
            "clsp-search provides only torchaudio.compliance.kaldi.fbank"
        )

    modules["torchaudio"].__getattr__ = missing  # type: ignore[method-assign]
    modules["torchaudio"].compliance = modules["torchaudio.compliance"]  # type: ignore[attr-defined]
    modules["torchaudio.compliance"].kaldi = modules["torchaudio.compliance.kaldi"]  # type: ignore[attr-defined]
    modules["torchaudio.compliance.kaldi"].fbank = fbank  # type: ignore[attr-defined]
    sys.modules.update(modules)
    try:
        yield True
    finally:
        for name, module in modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


__all__ = ["fbank", "mel_banks", "torchaudio_importable", "torchaudio_shim"]
