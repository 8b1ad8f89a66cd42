"""DNSMOS P.835 quality scores (SIG, BAK, OVRL) with the ONNX models the `speechmos` package ships.

speechmos's own `run` builds its ONNX sessions with default threading, which in indexing worker
processes would start one thread pool per worker per core; here each process gets one
single-threaded network, built on first use and kept. Its per-clip call also computes the P.808
score from a librosa mel spectrogram, which costs ~4x the SIG/BAK/OVRL model itself and is not
stored, so `measure_quality` runs the P.835 model alone, with speechmos's 9.01 s window and
polynomial calibration. Where speechmos slides the window by 1 s, `measure_quality` takes as few
windows as cover the clip, spread evenly (a 30 s segment: 4 windows, not 22); short clips are tiled
to fill exactly one window. Agreement with speechmos's sliding windows on real speech is in
benchmarks/RESULTS.md ("Indexing").

DNSMOS is most of what measuring attributes costs, so where the CPU has Intel AMX (and OpenVINO lists
"BF16" among its capabilities) the network runs on OpenVINO in bfloat16: 5.6x faster per window on a
2-core Xeon with AMX (40 against 224 ms), with
scores that rank the real-speech development set's clips as fp32 does (Spearman 0.9997 on each of
SIG, BAK and OVRL; largest difference 0.07 before calibration). Elsewhere, AVX-512 BF16 without AMX
included (never measured), it runs on ONNX Runtime in fp32, as before. `CLSP_SEARCH_DNSMOS_BACKEND` chooses: `auto` (default), `onnxruntime` (fp32, the
reference) or `openvino` (the CPU's own choice of precision: bf16 where native, else fp32).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import numpy as np

from searchengine import openvino_cpu

SAMPLE_RATE = 16000
log = logging.getLogger(__name__)


class QualityUnavailable(RuntimeError):
    """speechmos, or the runtime asked for, is not installed."""


BACKEND_ENV = "CLSP_SEARCH_DNSMOS_BACKEND"
BACKENDS = ("auto", "onnxruntime", "openvino")


def backend_from_env() -> str:
    """The backend `$CLSP_SEARCH_DNSMOS_BACKEND` asks for (default auto); an unknown name is an error."""
    try:
        return openvino_cpu.backend_setting(BACKEND_ENV, BACKENDS)
    except ValueError as exc:
        raise QualityUnavailable(str(exc)) from None


class DnsmosNetwork:
    """The P.835 network on one runtime: `raw(window)` -> its three uncalibrated outputs."""

    def __init__(self, path: str, backend: str) -> None:
        try:
            self._openvino = openvino_cpu.network_for(path, backend, "DNSMOS", {
                "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
        except openvino_cpu.OpenVinoUnavailable as exc:
            raise QualityUnavailable(f"{BACKEND_ENV}=openvino: {exc}") from exc
        if self._openvino is not None:
            self.backend = "openvino"
            self.precision = self._openvino.precision
        else:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            self.backend = "onnxruntime"
            self.precision = "float32"

    def raw(self, window: np.ndarray) -> np.ndarray:
        batch = window[np.newaxis, :].astype(np.float32)
        if self._openvino is not None:
            return np.array(self._openvino({0: batch})[0][0], dtype=np.float64)
        return np.asarray(self._session.run(None, {"input_1": batch})[0][0], dtype=np.float64)


@functools.lru_cache(maxsize=1)
def _calibration() -> Any:
    """speechmos's DNSMOS object, for its polynomial calibration only."""
    try:
        import onnxruntime  # noqa: F401  (the fallback runtime must exist even where OpenVINO runs)
        from speechmos import dnsmos
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise QualityUnavailable(f"DNSMOS needs `pip install speechmos onnxruntime` ({exc})") from exc
    calibration = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)  # its __init__ would build default-threaded sessions
    calibration.primary_model_path = os.path.join(os.path.dirname(dnsmos.__file__), "dnsmos_models",
                                                  "sig_bak_ovr.onnx")
    return calibration


@functools.cache
def _network(backend: str) -> DnsmosNetwork:
    """The network for one backend setting, built on first use and kept for the life of the process
    (OpenVINO networks must outlive forks: `searchengine/openvino_cpu.py`)."""
    return DnsmosNetwork(_calibration().primary_model_path, backend)


def _model() -> tuple[Any, DnsmosNetwork]:
    """speechmos's calibration and the network of the backend `$CLSP_SEARCH_DNSMOS_BACKEND` names."""
    return _calibration(), _network(backend_from_env())


def runtime() -> str:
    """Where DNSMOS runs in this process, e.g. "openvino bf16" or "onnxruntime float32"."""
    network = _model()[1]
    return f"{network.backend} {network.precision}"


def measure_quality(x: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float | None]:
    """`m_dnsmos_sig`, `m_dnsmos_bak`, `m_dnsmos_ovrl` (1..5, higher is better) of a 16 kHz clip."""
    keys = ("m_dnsmos_sig", "m_dnsmos_bak", "m_dnsmos_ovrl")
    x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
    if sr != SAMPLE_RATE or len(x) < int(0.2 * sr) or not np.any(x):
        return dict.fromkeys(keys)
    from speechmos.dnsmos import INPUT_LENGTH

    calibration, network = _model()
    window = int(INPUT_LENGTH * sr)
    if len(x) < window:
        x = np.tile(x, int(np.ceil(window / len(x))))[:window]  # one window for a short clip (speechmos doubles
        # it, which can make several windows of the same audio)
    # As few windows as cover the clip, spread evenly from its start to its end (speechmos slides its
    # window by 1 s: 22 windows for a 30 s segment, 7x the cost for scores ranked alike).
    starts = np.linspace(0, len(x) - window, int(np.ceil(len(x) / window))).astype(int)
    scores = []
    for start in starts:
        raw = network.raw(x[start : start + window])
        scores.append(calibration.get_polyfit_val(*raw, False))
    sig, bak, ovrl = (float(np.mean(v)) for v in zip(*scores, strict=False))
    return {"m_dnsmos_sig": round(sig, 4), "m_dnsmos_bak": round(bak, 4), "m_dnsmos_ovrl": round(ovrl, 4)}
