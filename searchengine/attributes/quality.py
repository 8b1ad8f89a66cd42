"""DNSMOS P.835 quality scores (SIG, BAK, OVRL) with the ONNX models the `speechmos` package ships.

speechmos's own `run` builds its ONNX sessions with default threading, which in indexing worker
processes would start one thread pool per worker per core; here each process gets one
single-threaded session, built on first use and kept. Its per-clip call also computes the P.808
score from a librosa mel spectrogram, which costs ~4x the SIG/BAK/OVRL model itself and is not
stored, so `measure_quality` runs the P.835 model alone, with speechmos's 9.01 s window and
polynomial calibration. Where speechmos slides the window by 1 s, `measure_quality` takes as few
windows as cover the clip, spread evenly (a 30 s segment: 4 windows, not 22); short clips are tiled
to fill exactly one window. ~0.6 s of one core per window here; agreement with speechmos's sliding
windows on real speech is in benchmarks/RESULTS.md ("Indexing").
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

SAMPLE_RATE = 16000


class QualityUnavailable(RuntimeError):
    """speechmos or onnxruntime is not installed."""


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    try:
        import onnxruntime as ort
        from speechmos import dnsmos
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise QualityUnavailable(f"DNSMOS needs `pip install speechmos onnxruntime` ({exc})") from exc
    root = os.path.dirname(dnsmos.__file__)
    primary = os.path.join(root, "dnsmos_models", "sig_bak_ovr.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    model = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)  # its __init__ would build default-threaded sessions
    model.primary_model_path = primary
    model.onnx_sess = ort.InferenceSession(primary, opts, providers=["CPUExecutionProvider"])
    return model


def measure_quality(x: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float | None]:
    """`m_dnsmos_sig`, `m_dnsmos_bak`, `m_dnsmos_ovrl` (1..5, higher is better) of a 16 kHz clip."""
    keys = ("m_dnsmos_sig", "m_dnsmos_bak", "m_dnsmos_ovrl")
    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    if sr != SAMPLE_RATE or len(x) < int(0.2 * sr) or not np.any(x):
        return dict.fromkeys(keys)
    from speechmos.dnsmos import INPUT_LENGTH

    model = _model()
    window = int(INPUT_LENGTH * sr)
    if len(x) < window:
        x = np.tile(x, int(np.ceil(window / len(x))))[:window]  # one window for a short clip (speechmos doubles
        # it, which can make several windows of the same audio)
    # As few windows as cover the clip, spread evenly from its start to its end (speechmos slides its
    # window by 1 s: 22 windows for a 30 s segment, 7x the cost for scores ranked alike).
    starts = np.linspace(0, len(x) - window, int(np.ceil(len(x) / window))).astype(int)
    scores = []
    for start in starts:
        seg = x[start : start + window]
        raw = model.onnx_sess.run(None, {"input_1": seg[np.newaxis, :].astype(np.float32)})[0][0]
        scores.append(model.get_polyfit_val(*raw, False))
    sig, bak, ovrl = (float(np.mean(v)) for v in zip(*scores, strict=False))
    return {"m_dnsmos_sig": round(sig, 4), "m_dnsmos_bak": round(bak, 4), "m_dnsmos_ovrl": round(ovrl, 4)}
