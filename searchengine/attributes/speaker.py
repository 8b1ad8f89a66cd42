"""Speaker embeddings (Resemblyzer's GE2E voice encoder, 256-d, L2-normalised) and gender from them.

The embedding is what the collection's speaker index holds: same-voice search, speaker clustering and
speaker-level near-duplicates all compare these vectors by inner product. Gender is estimated from it
and the clip's median F0 by a logistic regression (`gender_model.json`, fitted by `python -m
training.train_gender` on real and synthetic voices the project may ship) for clips whose manifest has
no gender label. The speaker vector alone reads timbre, which a telephone band or an unusual voice
blurs; F0 alone fails for low women and high men and says nothing for whispers; together they agree
on most real voices. The estimate comes with a confidence, the probability of the answer given.
Figures (development set and held-out synthetic voices) are stored next to the weights.

The GE2E network (three LSTM layers over 1.6 s windows of a mel spectrogram) is the largest cost of
measuring attributes after DNSMOS. Where the CPU has Intel AMX it runs on OpenVINO in bfloat16, from
an ONNX export of Resemblyzer's own weights made on first use (`onnx_files`): 2.5x faster per clip on
the real-speech development set, with speaker vectors at cosine 0.99993 or more to torch's, the same
gender estimate for every clip and the same same-speaker top-1 (benchmarks/RESULTS.md, "Indexing").
Elsewhere torch runs it in fp32, as Resemblyzer does. `CLSP_SEARCH_SPEAKER_BACKEND` chooses: `auto`
(default), `torch` (the reference) or `openvino` (the CPU's own precision: bf16 where native, else fp32).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from searchengine import openvino_cpu
from searchengine.onnx_files import cache_dir, write_atomically

SAMPLE_RATE = 16000
SPEAKER_DIM = 256
GENDER_MODEL = Path(__file__).with_name("gender_model.json")
BACKEND_ENV = "CLSP_SEARCH_SPEAKER_BACKEND"
BACKENDS = ("auto", "torch", "openvino")
#: Bump when the exported graph changes: older files are then ignored.
EXPORT_VERSION = 1
#: Resemblyzer's `embed_utterance` settings: partial windows per second, and how much of the last
#: window must hold audio for it to count.
PARTIALS_PER_SECOND = 1.3
MIN_COVERAGE = 0.75
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _encoder() -> Any:
    from resemblyzer import VoiceEncoder

    # torch's DataLoader workers already run single-threaded; setting threads here would also slow
    # the embedding model whenever attributes are measured in the main process (workers=0)
    return VoiceEncoder("cpu", verbose=False)


def _weights_file() -> Path:
    """Resemblyzer's bundled GE2E weights (what `VoiceEncoder` loads by default)."""
    import resemblyzer

    return Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"


def graph_path(directory: Path | None = None) -> Path:
    """Where the exported GE2E network lives, named by a hash of the weights it was made from."""
    digest = hashlib.blake2b(_weights_file().read_bytes(), digest_size=8).hexdigest()
    return (directory or cache_dir()) / f"resemblyzer-ge2e-{digest}-v{EXPORT_VERSION}.onnx"


def export(path: Path) -> Path:
    """Export GE2E's network (mels [N, 160, 40] -> unit partial embeddings [N, 256]) to `path`."""
    import torch
    from resemblyzer.hparams import mel_n_channels, partials_n_frames

    example = torch.zeros(2, partials_n_frames, mel_n_channels)

    def write(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's warnings about the LSTM's batch_first layout
            torch.onnx.export(_encoder().eval(), (example,), tmp, input_names=["mels"], output_names=["embeds"],
                              dynamic_axes={"mels": {0: "partials"}, "embeds": {0: "partials"}},
                              opset_version=17, dynamo=False)

    return write_atomically(path, write)


class SpeakerNetwork:
    """GE2E's network on one runtime: partial mel windows [N, 160, 40] -> unit partial embeddings [N, 256].

    `backend` "auto" runs OpenVINO in bf16 where the CPU has AMX and torch (fp32) elsewhere, or where
    the network cannot be exported or compiled (with a warning); "torch" always torch; "openvino"
    always OpenVINO (an `OpenVinoUnavailable` where it cannot). One thread, as in a decode worker."""

    def __init__(self, backend: str) -> None:
        self.backend, self.precision = "torch", "float32"
        self._openvino: openvino_cpu.Network | None = None
        if openvino_cpu.wanted(backend):
            try:
                path = graph_path()
                if not path.exists():
                    log.info("exporting the speaker encoder to %s", path)
                    export(path)
                self._openvino = openvino_cpu.network_for(str(path), backend, "the speaker encoder", {
                    "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
            except openvino_cpu.OpenVinoUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - auto falls back to torch, the reference
                if backend == "openvino":
                    raise openvino_cpu.OpenVinoUnavailable(f"the speaker encoder could not be exported: {exc}") from exc
                log.warning("the speaker encoder stays on torch: %s: %s", type(exc).__name__, exc)
        if self._openvino is not None:
            self.backend, self.precision = "openvino", self._openvino.precision

    def __call__(self, mels: np.ndarray) -> np.ndarray:
        if self._openvino is not None:
            return self._openvino({0: mels})[0]
        import torch

        with torch.no_grad():
            return _encoder()(torch.from_numpy(mels)).numpy()


_EXPORTING = threading.Lock()


@functools.cache
def _network(backend: str) -> SpeakerNetwork:
    """The network for one backend setting, built on first use and kept for the life of the process
    (OpenVINO networks must outlive forks: `searchengine/openvino_cpu.py`)."""
    with _EXPORTING:  # one export at a time in this process; the rename makes it safe across processes
        return SpeakerNetwork(backend)


def network() -> SpeakerNetwork:
    """The network of the backend `$CLSP_SEARCH_SPEAKER_BACKEND` names (an unknown name: ValueError)."""
    return _network(openvino_cpu.backend_setting(BACKEND_ENV, BACKENDS))


def runtime() -> str:
    """Where the speaker encoder runs in this process, e.g. "openvino bf16" or "torch float32"."""
    net = network()
    return f"{net.backend} {net.precision}"


def speaker_embedding(x: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray | None:
    """The clip's 256-d unit speaker vector, or None when it holds too little voiced audio to embed.

    Resemblyzer's `embed_utterance`, step by step so that the network can run elsewhere than torch:
    overlapping 1.6 s partial windows of the (silence-trimmed) clip, one unit embedding each, their
    mean, normalised."""
    from resemblyzer import VoiceEncoder, preprocess_wav
    from resemblyzer.audio import wav_to_mel_spectrogram

    wav = preprocess_wav(np.asarray(x, np.float32), source_sr=sr)  # resamples, trims silence (webrtcvad)
    if len(wav) < int(0.3 * SAMPLE_RATE):
        return None
    wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(wav), PARTIALS_PER_SECOND, MIN_COVERAGE)
    if wav_slices[-1].stop >= len(wav):
        wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)), "constant")
    mel = wav_to_mel_spectrogram(wav)
    partials = network()(np.ascontiguousarray(np.array([mel[s] for s in mel_slices]), dtype=np.float32))
    v = np.asarray(partials, np.float32).mean(axis=0)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else None


F0_CENTRE_HZ = 160.0
F0_SCALE_OCTAVES = 0.5
"""log2(F0 / 160 Hz) / 0.5: about -1 for a typical man (110 Hz), +0.6 for a typical woman (200 Hz)."""


@functools.lru_cache(maxsize=1)
def gender_model() -> dict[str, Any]:
    """The committed classifier: weights, bias, and how it was trained and scored."""
    return json.loads(GENDER_MODEL.read_text(encoding="utf-8"))


def gender_features(vectors: np.ndarray, f0_hz: np.ndarray | Sequence[float | None] | None = None) -> np.ndarray:
    """[N, 258]: the unit speaker vectors, centred and scaled log F0 (0 where unvoiced or unknown), and
    a flag that F0 is missing (whispers, noise), so a missing pitch is not read as a middle one."""
    v = np.atleast_2d(np.asarray(vectors, np.float64))
    f0 = np.full(len(v), np.nan) if f0_hz is None else np.array(
        [np.nan if f is None else float(f) for f in np.atleast_1d(np.asarray(f0_hz, dtype=object))], np.float64)
    missing = ~np.isfinite(f0) | (f0 <= 0)
    z = np.where(missing, 0.0, np.log2(np.where(missing, F0_CENTRE_HZ, f0) / F0_CENTRE_HZ) / F0_SCALE_OCTAVES)
    return np.hstack([v, z[:, None], missing[:, None].astype(np.float64)])


def female_probability(vectors: np.ndarray, f0_hz: Any = None, model: dict[str, Any] | None = None) -> np.ndarray:
    """P(female) for each row of unit speaker vectors [N, 256], given each clip's median F0 in Hz (None
    or NaN where it has none)."""
    m = model or gender_model()
    z = gender_features(vectors, f0_hz) @ np.asarray(m["weights"], np.float64) + float(m["bias"])
    return 1.0 / (1.0 + np.exp(-z))


def estimate_gender(vector: np.ndarray | None, f0_hz: float | None = None) -> dict[str, Any]:
    """`m_gender_est` ('female' | 'male') and `m_gender_prob`, the confidence: the probability of that
    answer (0.5-1)."""
    if vector is None:
        return {"m_gender_est": None, "m_gender_prob": None}
    p = float(female_probability(vector, [f0_hz])[0])
    return {"m_gender_est": "female" if p >= 0.5 else "male", "m_gender_prob": round(max(p, 1 - p), 4)}
