"""The one object callers use: `Encoder`, in the spirit of sentence-transformers' `encode`.

Batching, length bucketing, devices, mixed precision and progress bars are the encoder's business,
not the caller's. Every concrete model (our CLSP checkpoints, the released CLSP, CLAP) subclasses
`Encoder` and only implements how one prepared batch becomes embeddings.

How a speech batch reaches the device (`Encoder.encode_speech`):

* host side, in a background thread (`prefetched`): featurize and collate the next length bucket and,
  when it is bound for CUDA, copy it into page-locked (pinned) memory (`host_batch`). A copy from
  pinned memory is a DMA the GPU runs on its own, so it can be issued with `non_blocking=True`;
  from ordinary pageable memory CUDA first stages it through a pinned buffer and the CPU waits.
* device side, in the calling thread: copy the batch with `non_blocking=True` (`to_device`), run
  the tower under bf16 autocast, L2-normalise, and start the (asynchronous) copy of the vectors back.
  The vectors of a batch are read only after the next batch has been queued on the GPU, so the GPU
  has the next batch's work waiting while the host collects the previous one's result.

The queue between the two holds at most `prefetch` prepared batches, so host memory stays bounded.
On CPU the same code runs without pinning (pinned memory needs CUDA) and gives the same vectors,
bit for bit, as preparing and embedding each batch in turn: the batches and the arithmetic are
identical, only the thread that featurizes differs.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from searchengine.lru import LruCache
from searchengine.model.audio import MODEL_SAMPLE_RATE, prepare_waveforms
from searchengine.progress import progress_bar

DEFAULT_ZERO_SHOT_TEMPLATE = "A speaker in a {} tone."
DEFAULT_PREFETCH = 2
"""Prepared speech batches kept ready ahead of the device: one being copied/computed, one or two
waiting. More only costs host (pinned) memory once preparation keeps up."""

T = TypeVar("T")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def length_buckets(lengths: Sequence[int], batch_size: int, max_batch_samples: int | None = None) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    Sorting by length means little padding (padding is wasted compute) and putting the longest batch
    first makes an out-of-memory error happen at once rather than at the end of a long job.
    `max_batch_samples` additionally caps batch size x longest clip, so long clips get smaller batches.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        longest = lengths[batch[0]] if batch else lengths[index]
        too_many = len(batch) >= batch_size
        too_long = max_batch_samples is not None and batch and (len(batch) + 1) * longest > max_batch_samples
        if batch and (too_many or too_long):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield `items`, produced by a background thread that runs at most `depth` items ahead.

    The producer blocks when `depth` items wait unconsumed (a bounded queue: memory stays bounded
    however slow the consumer is). An exception raised while producing an item is re-raised in the
    consumer at that item's place, after the items before it. When the consumer stops early (an
    exception in its loop, `close()`), the producer stops after the item it is working on.
    `depth <= 0` iterates in the calling thread, with no thread at all.

    It overlaps work that releases the GIL (file I/O, waiting on worker processes, torch and numpy
    kernels, CUDA copies) with the consumer's work; pure-Python work in the producer, and C code
    that keeps the GIL (Praat's pitch tracker in clsp-mini's frontend), only interleaves with it.
    """
    if depth <= 0:
        yield from items
        return
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                box.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put("error", exc)
            return
        put("done", None)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def timed(items: Iterable[T], add: Callable[[float], None]) -> Iterator[T]:
    """Yield `items`, calling `add(seconds)` with the time each one took to arrive.

    Wrapped around `prefetched`, that is the time the consumer sat idle waiting for input."""
    iterator = iter(items)
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            add(time.perf_counter() - started)
            return
        add(time.perf_counter() - started)
        yield item


def host_batch(batch: dict[str, Any], device: str | torch.device) -> dict[str, Any]:
    """A prepared batch ready to leave the host: its tensors in pinned memory when bound for CUDA.

    Pinning only means something (and only works) when CUDA is present; for any other device, or on
    a machine without CUDA, the batch is returned as it is."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return batch
    return {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def to_device(batch: dict[str, Any], device: str | torch.device) -> dict[str, Any]:
    """Copy a batch's tensors to `device` without blocking the host where that is possible.

    A copy from pinned host memory to CUDA returns at once and runs in stream order before the
    kernels that read it; from pageable memory it is synchronous, as on CPU (where it is a no-op)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@dataclass
class SpeechTimes:
    """Where `encode_speech`'s time went; pass one in to have a call add its figures to it."""

    batches: int = 0
    seconds: float = 0.0  # wall time inside encode_speech
    prepare_wait_seconds: float = 0.0  # of which: waiting for the next prepared (featurized) batch


class Encoder(ABC):
    """Speech and text -> L2-normalised float32 vectors in one space (inner product = cosine)."""

    name: str
    model_id: str
    dim: int = 512
    device: torch.device

    # ------------------------------------------------------------------ to implement per model family
    @abstractmethod
    def _speech_batch(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        """16 kHz mono waveforms -> [B, dim] embeddings (any dtype/device; normalised later)."""

    @abstractmethod
    def _text_batch(self, texts: list[str]) -> torch.Tensor:
        """Texts -> [B, dim] embeddings."""

    # ------------------------------------------------------ optional split of `_speech_batch`
    def _prepare_speech_batch(self, waveforms: list[np.ndarray]) -> Any:
        """Host-side work for one batch (featurize, collate, pin): runs in `encode_speech`'s prefetch
        thread. The default does nothing, so a model that only implements `_speech_batch` does all
        its work in `_embed_speech_batch`."""
        return waveforms

    def _embed_speech_batch(self, prepared: Any) -> torch.Tensor:
        """A `_prepare_speech_batch` result -> [B, dim] embeddings (device-side work)."""
        return self._speech_batch(prepared)

    def _logit_scale(self) -> float:
        """Temperature used to turn cosines into zero-shot probabilities."""
        return 100.0

    # --------------------------------------------------------------------------------- shared API
    def speech_runtime(self) -> str:
        """Where and how speech runs ("torch cpu float32", "torch cuda bfloat16"): stored with each
        indexing run, since another runtime gives slightly different vectors."""
        return _torch_runtime(self.device)

    def text_runtime(self) -> str:
        """Where and how texts run; a model family whose texts run on another runtime says so."""
        return _torch_runtime(self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = _autocast_dtype(self.device)
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def encode_speech(
        self,
        waveforms: Any,
        sample_rate: int = MODEL_SAMPLE_RATE,
        batch_size: int = 32,
        max_batch_seconds: float = 480.0,
        show_progress: bool = False,
        prefetch: int = DEFAULT_PREFETCH,
        times: SpeechTimes | None = None,
    ) -> np.ndarray:
        """Embed waveforms (any rate, mono or multichannel) -> float32 [N, dim], L2-normalised.

        Length-bucketed batches are prepared up to `prefetch` ahead in a background thread while the
        device embeds the current one (see the module docstring); `prefetch=0` prepares each batch in
        turn in the calling thread. Both give the same vectors. `times`, when given, is added to.
        """
        started = time.perf_counter()
        prepared = prepare_waveforms(waveforms, sample_rate)
        output = np.zeros((len(prepared), self.dim), dtype=np.float32)
        if not prepared:
            return output
        lengths = [len(w) for w in prepared]
        batches = list(length_buckets(lengths, batch_size, int(max_batch_seconds * MODEL_SAMPLE_RATE)))
        progress = progress_bar(len(prepared), "speech", "encoding speech", show_progress)
        waited = [0.0]

        def host_batches() -> Iterator[tuple[list[int], Any]]:
            for batch in batches:
                yield batch, self._prepare_speech_batch([prepared[i] for i in batch])

        def wait(seconds: float) -> None:
            waited[0] += seconds

        pending: tuple[list[int], torch.Tensor, Any] | None = None
        with torch.inference_mode(), self._autocast():
            for batch, host in timed(prefetched(host_batches(), prefetch), wait):
                vectors = _start_readback(self._embed_speech_batch(host))
                if pending is not None:  # the previous batch's result, while this one is queued
                    output[pending[0]] = _finish_readback(pending[1], pending[2])
                    progress.update(len(pending[0]))
                pending = (batch, *vectors)
            if pending is not None:
                output[pending[0]] = _finish_readback(pending[1], pending[2])
                progress.update(len(pending[0]))
        progress.close()
        if times is not None:
            times.batches += len(batches)
            times.prepare_wait_seconds += waited[0]
            times.seconds += time.perf_counter() - started
        return output

    def encode_text(self, texts: str | Sequence[str], batch_size: int = 128, show_progress: bool = False) -> np.ndarray:
        """Embed texts -> float32 [N, dim], L2-normalised."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return output
        batches = list(length_buckets([len(t) for t in texts], batch_size))
        progress = progress_bar(len(texts), "text", "encoding text", show_progress)
        with torch.inference_mode(), self._autocast():
            for batch in batches:
                output[batch] = _normalise(self._text_batch([texts[i] for i in batch]))
                progress.update(len(batch))
        progress.close()
        return output

    def warm_up(self) -> None:
        """Make the first query as fast as the next (a server does this at start): by default, encode
        one text, which builds whatever a model builds on its first text."""
        self.encode_text(["a voice"])

    def zero_shot(
        self,
        waveforms: Any,
        labels: Sequence[str],
        template: str | Sequence[str] = DEFAULT_ZERO_SHOT_TEMPLATE,
        sample_rate: int = MODEL_SAMPLE_RATE,
        speech_embeddings: np.ndarray | None = None,
    ) -> np.ndarray:
        """Class probabilities [N, len(labels)]: softmax over the model's scaled cosine to each prompt.

        `template` may be several templates: each class is then the normalised mean of its prompts'
        embeddings (CLIP's prompt ensembling), which makes the result depend less on one wording.
        Pass `speech_embeddings` to reuse vectors already computed (evaluation scores several
        attributes on the same clips).
        """
        templates = [template] if isinstance(template, str) else list(template)
        if not templates:
            raise ValueError("zero_shot needs at least one template")
        text = self.class_embeddings([[pattern.format(label) for pattern in templates] for label in labels])
        speech = speech_embeddings if speech_embeddings is not None else self.encode_speech(waveforms, sample_rate)
        logits = self._logit_scale() * (speech @ text.T)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)

    def class_embeddings(self, prompts: Sequence[Sequence[str]]) -> np.ndarray:
        """One unit vector per class [C, D]: the normalised mean of that class's prompt embeddings.

        CLIP's prompt ensembling: a class described by several wordings depends less on any one of them.
        """
        if not prompts or any(not group for group in prompts):
            raise ValueError("class_embeddings needs at least one prompt for every class")
        vectors = self.encode_text([prompt for group in prompts for prompt in group])
        ends = np.cumsum([len(group) for group in prompts])
        sums = np.stack([vectors[end - len(group) : end].sum(axis=0) for group, end in zip(prompts, ends, strict=True)])
        return _normalise(torch.from_numpy(sums))

    def style_similarity(self, a: Any, b: Any, sample_rate: int = MODEL_SAMPLE_RATE) -> float | np.ndarray:
        """Speaking-style similarity in 0..1: the cosine of the speech embeddings, mapped (cos + 1) / 2.

        `a` and `b` are single waveforms (returns a float) or equally long lists (returns [N]).
        """
        single = hasattr(a, "ndim") and a.ndim == 1
        left = self.encode_speech([a] if single else a, sample_rate)
        right = self.encode_speech([b] if single else b, sample_rate)
        if left.shape != right.shape:
            raise ValueError("style_similarity needs as many clips in `a` as in `b`")
        similarity = np.clip(((left * right).sum(axis=1) + 1.0) / 2.0, 0.0, 1.0)
        return float(similarity[0]) if single else similarity

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_id={self.model_id!r}, device={self.device})"


DEFAULT_TEXT_CACHE_SIZE = 4096
#: Texts per ONNX Runtime call when a call brings more (captions at indexing): sorted by length so a
#: batch pads little. 8 and 16 were level (75-80 captions/s of 61 tokens on 2 cores), 32 slower (71),
#: torch in batches of 128 slower still (59-62) (2026-12-06).
ONNX_TEXT_BATCH = 16
#: Batches handed to the text path at once: OpenVINO runs them a core each (1.25x one after another).
ONNX_CALL_BATCHES = 8
#: Calls of at most this many texts are queries: their vectors are kept in the text cache. Bigger calls
#: (captions at indexing) are not, so a bulk job cannot evict the queries people repeat.
CACHED_CALL_MAX_TEXTS = 16


class TextVectorCache(LruCache):
    """A thread-safe LRU of text vectors keyed by (model id, backend, text); several encoders may share
    one, since the model id is part of the key. Stored and returned arrays are copies, so a caller that
    mutates what it got changes neither the cache nor what the next caller gets."""

    def __init__(self, size: int = DEFAULT_TEXT_CACHE_SIZE) -> None:
        super().__init__(size)

    def get(self, key: tuple[str, str, str]) -> np.ndarray | None:
        vector = super().get(key)
        return None if vector is None else vector.copy()

    def put(self, key: tuple[str, str, str], vector: np.ndarray) -> None:
        super().put(key, np.array(vector, dtype=np.float32, copy=True))


class ClspEncoder(Encoder):
    """Encoder over one of our CLSP checkpoints (clsp-mini or anything `clsp-search train` wrote).

    On CPU, texts run on an exported graph (`searchengine/model/onnx_text.py`; exported on first use),
    on OpenVINO in bf16 where the CPU has AMX, else on ONNX Runtime in fp32: queries one call each,
    captions at indexing in length-sorted batches of `ONNX_TEXT_BATCH` (benchmarks/RESULTS.md, "Text
    query encoding"). Torch is the reference and the fallback when the export or the load fails, on
    other devices, and when `text_backend` (default: `$CLSP_SEARCH_TEXT_BACKEND`, else "auto") is
    "torch"; "onnx" and "openvino" name a runtime. Vectors of query-sized calls are kept in an LRU
    (`text_cache`, 4096 texts) keyed by model id, backend and text."""

    def __init__(self, model: torch.nn.Module, name: str, checksum: str, device: torch.device,
                 text_backend: str | None = None, text_cache: TextVectorCache | None = None) -> None:
        from searchengine.model.onnx_text import BACKENDS, backend_from_env

        self.model = model.to(device).eval()
        self.name = name
        self.model_id = f"{name}@{checksum}"
        self.dim = model.embed_dim
        self.device = device
        self.text_backend = backend_from_env() if text_backend is None else text_backend
        if self.text_backend not in BACKENDS:
            raise ValueError(f"text_backend {self.text_backend!r}: expected one of {', '.join(BACKENDS)}")
        self.text_cache = TextVectorCache() if text_cache is None else text_cache
        self._onnx_text: Any = None  # None: not tried yet; False: unavailable; else an OnnxTextPath
        self._onnx_lock = threading.Lock()

    def warm_up(self) -> None:
        """Build the text path and every compilation of it, so that neither the first query nor the first
        concurrent one waits for one (a command-line search makes only the one it needs)."""
        super().warm_up()
        onnx_text = self._onnx_text_path()
        if onnx_text is not None:
            onnx_text.compile_all()

    def active_text_backend(self) -> str:
        """The backend a query-sized call runs on ("openvino", "onnx" or "torch"); may export the graph."""
        onnx_text = self._onnx_text_path()
        return "torch" if onnx_text is None else onnx_text.backend

    def text_runtime(self) -> str:
        """Where and how texts run: "openvino bf16", "onnx float32" or torch's; may export the graph."""
        onnx_text = self._onnx_text_path()
        return super().text_runtime() if onnx_text is None else f"{onnx_text.backend} {onnx_text.precision}"

    def _onnx_text_path(self, for_queries: bool = True) -> Any:
        """The exported text path (opened on first need, for the kind of call that needs it first), or
        None where texts run on torch."""
        if self.text_backend == "torch" or self.device.type != "cpu":
            return None
        if self._onnx_text is None:
            with self._onnx_lock:
                if self._onnx_text is None:
                    from searchengine.model.onnx_text import open_text_path

                    self._onnx_text = open_text_path(self.model, self.model_id, backend=self.text_backend,
                                                     for_queries=for_queries) or False
        return self._onnx_text or None

    def encode_text(self, texts: str | Sequence[str], batch_size: int = 128, show_progress: bool = False) -> np.ndarray:
        """Embed texts -> float32 [N, dim], L2-normalised; texts seen before come from `text_cache`."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        output = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return output
        cached_call = len(texts) <= CACHED_CALL_MAX_TEXTS
        onnx_text = self._onnx_text_path(for_queries=cached_call)
        backend = "torch" if onnx_text is None else onnx_text.backend
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            cached = self.text_cache.get((self.model_id, backend, text)) if cached_call else None
            if cached is None:
                missing.setdefault(text, []).append(i)
            else:
                output[i] = cached
        if missing:
            unique = list(missing)
            if onnx_text is None:
                vectors = super().encode_text(unique, batch_size, show_progress)
            else:
                vectors = _onnx_batches(onnx_text, unique, self.dim, show_progress)
            for text, vector in zip(unique, vectors, strict=True):
                output[missing[text]] = vector
                if cached_call:
                    self.text_cache.put((self.model_id, backend, text), vector)
        return output

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return to_device(batch, self.device)

    def _prepare_speech_batch(self, waveforms: list[np.ndarray]) -> dict[str, torch.Tensor]:
        return host_batch(self.model.speech_tower.prepare(waveforms), self.device)

    def _embed_speech_batch(self, prepared: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.encode_speech(**self._to_device(prepared))

    def _speech_batch(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        return self._embed_speech_batch(self._prepare_speech_batch(waveforms))

    def _text_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(**self._to_device(self.model.text_tower.prepare(texts)))

    def _logit_scale(self) -> float:
        return float(self.model.scale().detach())


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The float type the towers run in under autocast on `device` (bf16 on CUDA), or None: no
    autocast, fp32."""
    return torch.bfloat16 if device.type == "cuda" else None


def _torch_runtime(device: torch.device) -> str:
    """How torch computes on `device` here, by the same rule as `Encoder._autocast`."""
    dtype = _autocast_dtype(device) or torch.float32
    return f"torch {device.type} {str(dtype).removeprefix('torch.')}"


def _onnx_batches(onnx_text: Any, texts: list[str], dim: int,
                  show_progress: bool) -> np.ndarray:
    """`texts` through the ONNX text path in length-sorted batches of `ONNX_TEXT_BATCH`, in their order."""
    output = np.zeros((len(texts), dim), dtype=np.float32)
    progress = progress_bar(len(texts), "text", "encoding text", show_progress and len(texts) > ONNX_TEXT_BATCH)
    batches = list(length_buckets([len(t) for t in texts], ONNX_TEXT_BATCH))
    for start in range(0, len(batches), ONNX_CALL_BATCHES):  # a few batches per call: progress, bounded memory
        group = batches[start : start + ONNX_CALL_BATCHES]
        for batch, vectors in zip(group, onnx_text.many([[texts[i] for i in b] for b in group]), strict=True):
            output[batch] = _normalise(torch.from_numpy(vectors))
            progress.update(len(batch))
    progress.close()
    return output


def _normalise(vectors: torch.Tensor) -> np.ndarray:
    vectors = vectors.float()
    return torch.nn.functional.normalize(vectors, dim=-1).cpu().numpy()


def _start_readback(vectors: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Normalise on the device and start copying the result to the host.

    On CUDA the copy goes into pinned memory without blocking and an event marks its end, so the
    host can queue the next batch before it waits; elsewhere the result is already on the host."""
    vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
    if vectors.device.type != "cuda":
        return vectors, None
    host = torch.empty(vectors.shape, dtype=vectors.dtype, pin_memory=True)
    host.copy_(vectors, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done


def _finish_readback(host: torch.Tensor, done: Any) -> np.ndarray:
    if done is not None:
        done.synchronize()
    return host.cpu().numpy()
