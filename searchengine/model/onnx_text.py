"""Our CLSP text path (tokens -> normalised 512-d vector) on ONNX Runtime, for fast CPU text queries.

The torch path (`CLSP.encode_text`) stays the reference. It selects real tokens with boolean-mask
indexing and sums them with `index_add_`, which the TorchScript ONNX exporter may export wrongly, so
the graph is exported from `TextPath`, which computes the same math over every position and lets the
mask do the selecting: token memory blend and projection head on every position (padding included),
then the mean over real tokens. Padding rows are computed and multiplied by zero, so the vectors
equal the torch path's up to float rounding (checked by tests/model/test_onnx_text.py).

The graph is exported lazily, the first time a text is encoded, into a cache directory
(`~/.cache/clsp-search/onnx/`, or `$CLSP_SEARCH_CACHE/onnx/`), one file per model id, fingerprint of
the text-path weights (a frozen tower's by its files, so it need not be loaded) and `EXPORT_VERSION`,
written atomically (temporary file, fsync, rename), so later processes load it; only the newest
`KEEP_GRAPHS` files are kept. The fingerprint guards against two in-memory models that share an id.

Where the CPU has Intel AMX, the exported graph runs on OpenVINO in bfloat16 instead of ONNX Runtime in
fp32 (`searchengine/openvino_cpu.py`): 1.4x faster a query and about 3x for captions in batches, with the
same top-10 results for 99 % of queries (benchmarks/RESULTS.md, "Text query encoding"; the issue's
rule for a lower-precision path is 98 %). int8 dynamic quantisation was tried and not adopted: it kept
87-97 % of the top 10.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from searchengine import openvino_cpu
from searchengine.onnx_files import CACHE_ENV, cache_dir, write_atomically

log = logging.getLogger(__name__)

#: Bump when `TextPath` or the export settings change: older files are then ignored.
EXPORT_VERSION = 2
BACKEND_ENV = "CLSP_SEARCH_TEXT_BACKEND"
#: auto: OpenVINO bf16 where the CPU has AMX, else ONNX Runtime fp32 (torch when the graph cannot be made);
#: onnx: ONNX Runtime fp32 everywhere; openvino: OpenVINO at the CPU's own precision; torch: the reference.
BACKENDS = ("auto", "onnx", "openvino", "torch")
OPSET = 17
#: Exported graphs kept in the cache directory, newest first (see `prune`).
KEEP_GRAPHS = 8


def backend_from_env(default: str = "auto") -> str:
    """The backend `$CLSP_SEARCH_TEXT_BACKEND` asks for; an unknown name is a ValueError."""
    return openvino_cpu.backend_setting(BACKEND_ENV, BACKENDS, default)


class UnsupportedModel(ValueError):
    """The model's text path has no ONNX export here (its callers use torch)."""


class TextPath(nn.Module):
    """Export-only view of `CLSP.encode_text`: input_ids, attention_mask (and token_type_ids) -> [B, E]
    unit vectors, with no data-dependent indexing."""

    def __init__(self, clsp: nn.Module) -> None:
        super().__init__()
        tower, head = clsp.text_tower, clsp.text_head
        pooling = getattr(tower, "pooling", None)
        if pooling not in ("head_mean", "mean", "cls"):
            raise UnsupportedModel(f"no ONNX text path for pooling {pooling!r}")
        self.pooling = pooling
        self.bert = tower.model
        self.memory = tower.memory if pooling == "head_mean" else None
        self.head = head

    def _blend(self, x: torch.Tensor) -> torch.Tensor:
        """TokenMemory's blend over rows [N, D], unchunked (every row independent, as there)."""
        memory = self.memory
        centroids = memory.centroids.float()
        squared_norms = (centroids * centroids).sum(dim=1)
        distances = (x * x).sum(dim=1, keepdim=True) - 2.0 * x @ centroids.T + squared_norms
        nearest, index = distances.topk(memory.neighbours, dim=1, largest=False)
        weights = torch.softmax(-(nearest - nearest[:, :1]) / (memory.temperature * memory.scale), dim=1)
        blended = (weights.unsqueeze(-1) * centroids[index]).sum(dim=1)
        return (1.0 - memory.weight) * x + memory.weight * blended

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
        count = mask.sum(dim=1).clamp(min=1.0)
        if self.pooling == "cls":
            out = self.head.mlp(self.head.projection(hidden[:, 0]))
        elif self.pooling == "mean":
            out = self.head.mlp(self.head.projection((hidden * mask).sum(dim=1) / count))
        else:
            if self.memory is not None:
                shape = hidden.shape
                hidden = self._blend(hidden.reshape(-1, shape[-1])).reshape(shape)
            mapped = self.head.mlp(self.head.projection(hidden))  # [B, T, E], every position
            out = (mapped * mask).sum(dim=1) / count
        return nn.functional.normalize(out, dim=-1)


def fingerprint(clsp: nn.Module) -> str:
    """A short hash of the text path's weights: the head and the token memory in full, the tower config,
    and the tower's own weights by the files they load from (`HFTextTower.weights_identity`: a frozen
    tower, which need not be loaded for this) or else by a sample of its tensors (the first 4096 values
    of each). Cheap (tens of ms)."""
    digest = hashlib.blake2b(digest_size=8)
    tower = clsp.text_tower
    digest.update(repr(sorted((k, repr(v)) for k, v in getattr(tower, "config", {}).items())).encode())
    identity = tower.weights_identity() if hasattr(tower, "weights_identity") else None
    if identity is not None:
        digest.update(f"tower files {identity}".encode())
    for prefix, module, full in (("head", clsp.text_head, True), ("tower", tower, False)):
        for name, tensor in sorted(module.state_dict().items()):
            memory = name.startswith("memory.")
            if prefix == "tower" and identity is not None and not memory:
                continue
            flat = tensor.detach().reshape(-1)
            if not full and not memory:
                flat = flat[:4096]
            digest.update(f"{prefix}.{name}{tuple(tensor.shape)}".encode())
            digest.update(flat.float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def graph_path(model_id: str, print_: str, directory: Path | None = None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id.replace("@", "-"))
    return (directory or cache_dir()) / f"{safe}-{print_}-text-v{EXPORT_VERSION}.onnx"


def export(clsp: nn.Module, path: Path, input_names: list[str]) -> Path:
    """Export the text path of `clsp` to `path` atomically (`onnx_files.write_atomically`)."""
    wrapper = TextPath(clsp).eval()
    example = clsp.text_tower.prepare(["a calm low voice", "a breathy young woman whispering in a hall"])
    args = tuple(example[name] for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes["embedding"] = {0: "batch"}

    def write(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the tokenizer-shaped branches of BERT
            torch.onnx.export(wrapper, args, tmp, input_names=input_names, output_names=["embedding"],
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)

    write_atomically(path, write)
    prune(path.parent, keep=KEEP_GRAPHS)
    return path


def prune(directory: Path, keep: int) -> None:
    """Delete all but the `keep` newest graphs (each is about 110 MB; every new checkpoint adds one)."""
    graphs = sorted(directory.glob("*-text-v*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in graphs[keep:]:
        old.unlink(missing_ok=True)


class OnnxTextPath:
    """A model's exported text path on one runtime: `texts -> [B, E] float32` unit vectors.

    `backend` "auto" runs OpenVINO in bf16 where the CPU has AMX and ONNX Runtime in fp32 elsewhere, or
    where OpenVINO cannot compile the graph (with a warning); "onnx" always ONNX Runtime; "openvino"
    always OpenVINO (an error where it cannot). `self.backend` says which runs, `self.precision` how.
    `for_queries` says what the first call is (a query, or bulk captions): OpenVINO compiles for that
    at once and for the other on first need."""

    def __init__(self, clsp: nn.Module, model_id: str, directory: Path | None = None, backend: str = "auto",
                 for_queries: bool = True) -> None:
        self.tower = clsp.text_tower
        probe = self.tower.prepare(["x"])
        self.input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in probe]
        self.path = graph_path(model_id, fingerprint(clsp), directory)
        if not self.path.exists():
            log.info("exporting the text path of %s to %s", model_id, self.path)
            export(clsp, self.path, self.input_names)
        self._openvino = openvino_cpu.network_for(str(self.path), backend, f"the text path of {model_id}",
                                                  {"PERFORMANCE_HINT": "THROUGHPUT"},
                                                  alone_settings={"PERFORMANCE_HINT": "LATENCY"},
                                                  first_alone=for_queries)
        if self._openvino is not None:
            self.backend, self.precision = "openvino", self._openvino.precision
            return
        import onnxruntime as ort

        self.backend, self.precision = "onnx", "float32"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ONNX Runtime's pool threads spin for a while after each run by default. In a server the same
        # cores then answer HTTP, FAISS and DuckDB work; spinning took them away (a torch encode run
        # right after an ONNX one took 48 ms instead of 16 on 2 cores), so idle threads sleep.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def compile_all(self) -> None:
        """Make every compilation of the network now (OpenVINO makes the second on first need)."""
        if self._openvino is not None:
            self._openvino.compile_all()

    def prepare(self, texts: list[str]) -> dict[str, np.ndarray]:
        batch = self.tower.prepare(texts)  # the tower's own tokenizer call: same ids as the torch path
        return {name: batch[name].numpy().astype(np.int64, copy=False) for name in self.input_names}

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self._openvino is not None:
            return self._openvino(self.prepare(texts))[0]
        return self.session.run(None, self.prepare(texts))[0]

    def many(self, batches: list[list[str]]) -> list[np.ndarray]:
        """Vectors of each batch of texts, in order: on OpenVINO as many batches at a time as it has
        streams (a core each), on ONNX Runtime one after another (each over every core)."""
        if self._openvino is not None:
            return [out[0] for out in self._openvino.map([self.prepare(batch) for batch in batches])]
        return [self(batch) for batch in batches]


_LOCK = threading.Lock()


def open_text_path(clsp: nn.Module, model_id: str, directory: Path | None = None,
                   backend: str = "auto", for_queries: bool = True) -> OnnxTextPath | None:
    """An `OnnxTextPath`, or None (with one warning) when the export or the load fails."""
    with _LOCK:  # one export at a time in this process; the rename makes it safe across processes
        try:
            return OnnxTextPath(clsp, model_id, directory, backend, for_queries)
        except Exception as exc:  # noqa: BLE001 - any failure means: use torch
            level = logging.INFO if isinstance(exc, UnsupportedModel) else logging.WARNING
            log.log(level, "ONNX text path unavailable for %s, using torch: %s: %s",
                    model_id, type(exc).__name__, exc)
            return None


def as_tensor(vectors: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))


__all__ = ["BACKENDS", "BACKEND_ENV", "CACHE_ENV", "EXPORT_VERSION", "OnnxTextPath", "TextPath",
           "UnsupportedModel", "backend_from_env", "cache_dir", "export", "fingerprint", "graph_path",
           "open_text_path"]
