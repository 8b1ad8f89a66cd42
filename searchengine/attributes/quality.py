"""DNSMOS P.835 quality scores (SIG, BAK, OVRL) with the ONNX models the `speechmos` package ships.

speechmos's own `run` builds its ONNX sessions with default threading, which in indexing worker
processes would start one thread pool per worker per core; here each process gets one
single-threaded session pair, built on first use and kept (the models load in ~0.3 s, a clip costs
one 9 s DNSMOS window, ~0.1 s of one core on an idle machine).
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
    p808 = os.path.join(root, "dnsmos_models", "model_v8.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    model = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)  # its __init__ would build default-threaded sessions
    model.primary_model_path = primary
    model.onnx_sess = ort.InferenceSession(primary, opts, providers=["CPUExecutionProvider"])
    model.p808_onnx_sess = ort.InferenceSession(p808, opts, providers=["CPUExecutionProvider"])
    return model


def measure_quality(x: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float | None]:
    """`m_dnsmos_sig`, `m_dnsmos_bak`, `m_dnsmos_ovrl` (1..5, higher is better) of a 16 kHz clip."""
    keys = ("m_dnsmos_sig", "m_dnsmos_bak", "m_dnsmos_ovrl")
    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    if sr != SAMPLE_RATE or len(x) < int(0.2 * sr) or not np.any(x):
        return dict.fromkeys(keys)
    scores = _model()(x, sr, False)
    return {
        "m_dnsmos_sig": round(float(scores["sig_mos"]), 4),
        "m_dnsmos_bak": round(float(scores["bak_mos"]), 4),
        "m_dnsmos_ovrl": round(float(scores["ovrl_mos"]), 4),
    }
