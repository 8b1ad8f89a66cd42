"""The bundled clsp-mini gives exactly the vectors it gave when these were recorded.

Refactoring the model code (moving training out, removing experiments) must not change what search
computes: a collection indexed before stays valid only if every speech and text vector is the same.
The reference values in `fixtures/clsp_mini_vectors.npz` were written by `record()` below from the
weights `clsp-mini@88ac1c305584` before the training code left `searchengine/model/`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from searchengine.model import load_model
from searchengine.model.encoder import ClspEncoder

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "clsp_mini_vectors.npz"
TEXTS = [
    "A calm, low-pitched man speaking slowly.",
    "a breathy young woman whispering in a reverberant room",
    "fast high voice",
    "The recording is clean; the speaker has a Scottish accent and a bright, energetic delivery.",
]
#: How far a recorded coordinate may move (the vectors are unit-norm, coordinates about 0.04).
TOLERANCE = 1e-6


def waveforms() -> list[np.ndarray]:
    """Three deterministic 16 kHz signals of different lengths and pitch: voiced-like tones with a
    little seeded noise, so the pitch track, the modulation spectrum and padding all take part."""
    rng = np.random.default_rng(1234)
    out = []
    for seconds, f0 in ((1.3, 110.0), (2.7, 220.0), (4.1, 160.0)):
        t = np.arange(int(seconds * 16000)) / 16000
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 4 * t))) / 16000
        wave = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        out.append((0.15 * wave + 0.005 * rng.standard_normal(t.size)).astype(np.float32))
    return out


def encode() -> tuple[str, np.ndarray, np.ndarray]:
    """Speech and text vectors of the fp32 paths. Texts run on ONNX Runtime, exact to float rounding;
    OpenVINO's bf16 (the default where the CPU has AMX) is held to torch's top 10 by
    tests/model/test_onnx_text.py instead."""
    loaded = load_model("clsp-mini", device="cpu")
    encoder = ClspEncoder(loaded.model, loaded.name, loaded.model_id.split("@")[1], loaded.device, text_backend="onnx")
    return encoder.model_id, encoder.encode_speech(waveforms(), sample_rate=16000), encoder.encode_text(TEXTS)


def record() -> None:
    """Write the reference file (run once, by hand, from the weights the test pins)."""
    model_id, speech, text = encode()
    np.savez(REFERENCE, model_id=np.array(model_id), speech=speech, text=text)


@pytest.mark.slow
def test_bundled_weights_give_the_recorded_vectors():
    reference = np.load(REFERENCE)
    model_id, speech, text = encode()
    assert model_id == str(reference["model_id"])
    np.testing.assert_allclose(speech, reference["speech"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(text, reference["text"], rtol=0, atol=TOLERANCE)


if __name__ == "__main__":
    record()
