"""Audio bandwidth: how high the recording's spectrum reaches, which tells a telephone line apart.

A telephone channel keeps 300-3400 Hz and is sampled at 8 kHz, so nothing of the voice is left above
about 4 kHz; a wideband microphone keeps fricatives and breath up to the Nyquist frequency. Noise,
reverberation and loudness do not move this edge, so it is the one measured column that answers
"over the phone". The measure is the long-term average spectrum of the speech-active frames, read
relative to its own 300-3400 Hz level (the band every channel keeps), so it does not depend on the
level of the clip: the upper edge is the highest frequency still within `EDGE_DB` of that level.

On the real-speech development set (benchmarks/real_speech), the 28 telephone clips read 3844-3875 Hz
and the 295 others 7406-8000 Hz.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FFT_SIZE = 512
"""32 ms frames at 16 kHz (31.25 Hz bins), hop half a frame."""
ACTIVE_DB = 30.0
"""Frames within 30 dB of the loudest frame count as speech (pauses would read the noise floor's spectrum)."""
EDGE_DB = 50.0
"""The edge is where the spectrum has fallen 50 dB under its 300-3400 Hz mean: a 6th-order band-pass
is far past that a few hundred Hz above 3400 Hz, while wideband speech stays above it up to 7-8 kHz."""
TELEPHONE_BAND = (300.0, 3400.0)


def measure_spectrum(x: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float | None]:
    """`m_bandwidth_hz`: the upper edge of the clip's spectrum (Hz, at most sr / 2); None for silence
    or a clip shorter than one frame."""
    x = np.asarray(x, np.float64)
    if len(x) < FFT_SIZE or not np.any(x):
        return {"m_bandwidth_hz": None}
    frames = np.lib.stride_tricks.sliding_window_view(x, FFT_SIZE)[:: FFT_SIZE // 2]
    spectra = np.abs(np.fft.rfft(frames * np.hanning(FFT_SIZE), axis=1)) ** 2
    power = spectra.sum(axis=1)
    active = power >= power.max() * 10 ** (-ACTIVE_DB / 10.0)
    ltas = spectra[active].mean(axis=0)
    freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / sr)
    band = (freqs >= TELEPHONE_BAND[0]) & (freqs <= TELEPHONE_BAND[1])
    reference = float(ltas[band].mean())
    if reference <= 0:
        return {"m_bandwidth_hz": None}
    kept = freqs[ltas >= reference * 10 ** (-EDGE_DB / 10.0)]
    return {"m_bandwidth_hz": round(float(kept.max()), 1) if len(kept) else None}
