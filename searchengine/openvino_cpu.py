"""OpenVINO on the CPU: the runtime of the networks that run in bfloat16 where the CPU has Intel AMX.

Two networks run here on such CPUs, each measured against its fp32 reference first
(benchmarks/RESULTS.md): DNSMOS (`searchengine/attributes/quality.py`, 5.6x a window) and the CLSP
text path (`searchengine/model/onnx_text.py`, 1.4x a query, about 3x for captions). Everywhere else they
keep ONNX Runtime in fp32. This module holds what both need: whether bf16 is known to pay on this CPU,
compiled networks that live as long as the process, and one infer request per thread.

Compiled networks are never freed, because the indexer forks its decode workers: after an OpenVINO
network had been freed, a forked child that ran one died (`std::system_error`) or hung, and a test
process that indexed later crashed. While every network lives, a forked child runs the ones it
inherited and compiles new ones safely. Networks are keyed by file and settings, so a model opened
again (a searcher reopened, a second indexing run) shares the first one's.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class OpenVinoUnavailable(RuntimeError):
    """OpenVINO was asked for by name and is not installed or cannot compile the network."""


def core() -> Any | None:
    """An `openvino.Core`, or None where OpenVINO is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return None
    return ov.Core()


def fast_bf16(ov_core: Any, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether bfloat16 is known to pay here: OpenVINO computes bf16 natively and the CPU has AMX, where
    it was measured. AVX-512 BF16 alone also counts as native for OpenVINO, but its speed there was
    never measured, so such CPUs keep the fp32 reference."""
    if "BF16" not in ov_core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return False
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in f)
    except OSError:
        return False


def backend_setting(variable: str, choices: tuple[str, ...], default: str = "auto") -> str:
    """The runtime an environment variable asks for (`default` when unset); an unknown name is a
    ValueError that lists the choices."""
    value = os.environ.get(variable, "").strip().lower() or default
    if value not in choices:
        raise ValueError(f"{variable}={value!r}: expected one of {', '.join(choices)}")
    return value


def wanted(backend: str) -> bool:
    """Whether a backend setting runs OpenVINO here: "openvino" always; "auto" where `fast_bf16`."""
    if backend == "openvino":
        return True
    if backend != "auto":
        return False
    ov_core = core()
    return ov_core is not None and fast_bf16(ov_core)


def network_for(path: str, backend: str, what: str, settings: dict[str, Any],
                alone_settings: dict[str, Any] | None = None, first_alone: bool = True) -> Network | None:
    """The OpenVINO network a backend setting asks for, or None where the fp32 reference runtime (ONNX
    Runtime) should run instead. "openvino": always OpenVINO, at the CPU's own precision, and an
    `OpenVinoUnavailable` where it cannot be had. "auto": OpenVINO only where `fast_bf16`, and ONNX
    Runtime (with a warning naming `what`) where OpenVINO cannot compile the network. Anything else:
    None."""
    if backend not in ("auto", "openvino"):
        return None
    ov_core = core()
    if ov_core is None:
        if backend == "openvino":
            raise OpenVinoUnavailable("OpenVINO is not installed (`pip install openvino`)")
        return None
    if backend == "auto" and not fast_bf16(ov_core):
        return None
    try:
        return Network(path, settings, alone_settings, first_alone)
    except Exception as exc:  # noqa: BLE001 - auto falls back to the reference runtime
        if backend == "openvino":
            raise OpenVinoUnavailable(f"OpenVINO could not load {what}: {exc}") from exc
        log.warning("OpenVINO could not load %s (%s: %s); using ONNX Runtime fp32", what, type(exc).__name__, exc)
        return None


_COMPILED: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
_COMPILING = threading.Lock()


def _compiled(path: str, settings: tuple[tuple[str, Any], ...]) -> Any:
    """The network of `path` compiled with `settings`, compiled once per process (two threads asking at
    once get the same one) and never freed."""
    key = (path, settings)
    compiled = _COMPILED.get(key)
    if compiled is None:
        with _COMPILING:
            compiled = _COMPILED.get(key)
            if compiled is None:
                ov_core = core()
                if ov_core is None:
                    raise RuntimeError("OpenVINO is not installed (`pip install openvino`)")
                compiled = _COMPILED[key] = ov_core.compile_model(ov_core.read_model(path), "CPU", dict(settings))
    return compiled


class Network:
    """One network, compiled with `settings` (kept for the life of the process), with an infer request
    per thread: a request shared by threads returned wrong results without an error.

    With `alone_settings`, a second compilation of the same file serves the calls that run alone, while
    `settings` serves calls that arrive while another is running and `map`. For the text path on 2
    cores, compiled for latency (one call over both cores, one at a time) it answers a lone query in 4.1
    ms against 6.0, compiled for throughput (a call per core) it answers 400 queries/s from 8 threads
    against 220, and captions in two streams of batches at 1.25x the rate of one (benchmarks/RESULTS.md,
    "Text query encoding"): choosing by what is running gets each. Only the compilation the first call
    needs is made when the network is opened (`first_alone`: the lone-call one, all a command-line
    search needs; else the other, all indexing needs), the other on first need or by `compile_all` (a
    server at start): each costs about 0.5 s and 170-190 MB resident.
    """

    def __init__(self, path: str, settings: dict[str, Any] | None = None,
                 alone_settings: dict[str, Any] | None = None, first_alone: bool = True) -> None:
        self.path = str(path)
        self._key = _key(settings)
        self._alone_key = None if alone_settings is None else _key(alone_settings)
        # Compiled now, so that a graph OpenVINO cannot take fails here, where callers fall back.
        first = _compiled(self.path, self._alone_key if self._alone_key is not None and first_alone else self._key)
        self.precision = first.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "bf16", "f32"
        self._requests = threading.local()
        self._lock = threading.Lock()
        self._running = 0

    @property
    def compiled(self) -> Any:
        """The compilation for concurrent calls and `map` (made on first use)."""
        return _compiled(self.path, self._key)

    def compile_all(self) -> None:
        """Make every compilation now rather than on a first call that needs it."""
        for key in (self._key, self._alone_key):
            if key is not None:
                _compiled(self.path, key)

    def __call__(self, inputs: dict[str | int, np.ndarray]) -> list[np.ndarray]:
        """The network's outputs for `inputs` (by input name or index), as arrays this caller owns."""
        with self._lock:
            alone = self._alone_key is not None and self._running == 0
            self._running += 1
        try:
            requests = getattr(self._requests, "by_network", None)
            if requests is None:
                requests = self._requests.by_network = {}
            request = requests.get(alone)
            if request is None:
                compiled = _compiled(self.path, self._alone_key) if alone else self.compiled
                request = requests[alone] = compiled.create_infer_request()
            request.infer(inputs)
            return self._outputs(request)
        finally:
            with self._lock:
                self._running -= 1

    def map(self, batches: list[dict[str | int, np.ndarray]]) -> list[list[np.ndarray]]:
        """Outputs for each of `batches`, in order, run as many at a time as the compilation has
        streams (bulk work: captions at indexing). A single batch is a call like any other, so it
        runs over every core when nothing else is running."""
        if len(batches) == 1:
            return [self(batches[0])]
        import openvino as ov

        results: list[list[np.ndarray] | None] = [None] * len(batches)

        def done(request: Any, index: int) -> None:
            results[index] = self._outputs(request)

        queue = ov.AsyncInferQueue(self.compiled)
        queue.set_callback(done)
        for index, batch in enumerate(batches):
            queue.start_async(batch, index)
        queue.wait_all()
        return results  # type: ignore[return-value]

    def _outputs(self, request: Any) -> list[np.ndarray]:
        """Copies of a finished request's outputs (its tensors are overwritten by its next run)."""
        return [np.array(tensor.data, copy=True) for tensor in request.output_tensors]


def _key(settings: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((settings or {}).items()))
