"""Micro-batching of concurrent text queries: many threads ask for one vector each, one encoder call
answers them together.

A server answers each request in its own thread. Encoding eight queries one by one pays the model's
per-call cost eight times and lets the calls fight over the same cores; encoding them as one batch
pays it once and keeps each core on one call. `TextQueryBatcher` puts every `encode(text)` on a
queue; one worker thread takes the first waiting text, then whatever else arrives within a short,
bounded window (`window_s`, at most `max_batch` texts), encodes them in one call and hands each
caller its own row. At low load a query waits at most `window_s`; under load the batch fills from
the queue that built up while the previous batch ran.

An encoder error fails every caller of that batch with that error and leaves the worker running.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

#: How long the worker waits for more texts after the first one of a batch (seconds).
DEFAULT_WINDOW_S = 0.002
#: At most this many texts per encoder call (ClspEncoder sends calls of up to 16 texts to ONNX).
DEFAULT_MAX_BATCH = 16
_STOP = object()


class BatcherClosedError(RuntimeError):
    """`encode` after `close`."""


class TextQueryBatcher:
    """`encode(text) -> [dim]` from many threads, answered by batched `encode_texts(list) -> [N, dim]`."""

    def __init__(self, encode_texts: Callable[[list[str]], np.ndarray], window_s: float = DEFAULT_WINDOW_S,
                 max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if not 0.0 <= window_s <= 0.05:
            raise ValueError(f"window_s={window_s}: a collect window must be between 0 and 50 ms")
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch}: must be at least 1")
        self._encode_texts = encode_texts
        self.window_s = float(window_s)
        self.max_batch = int(max_batch)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self.batches = 0  # encoder calls made, for tests and the benchmark
        self.texts = 0  # texts answered through them
        self._worker = threading.Thread(target=self._run, name="text-query-batcher", daemon=True)
        self._worker.start()

    def encode(self, text: str) -> np.ndarray:
        """The vector of one text, computed in a batch with whatever other texts are waiting."""
        if self._closed:
            raise BatcherClosedError("the text query batcher is closed")
        future: Future = Future()
        self._queue.put((text, future))
        return future.result()

    def close(self) -> None:
        """Stop the worker after the texts already queued; later `encode` calls raise."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._worker.join(timeout=10)

    def _collect(self, first: tuple[str, Future]) -> tuple[list[tuple[str, Future]], bool]:
        """The first request plus those arriving within the window; True when told to stop."""
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:
                remaining = deadline - time.monotonic()
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is _STOP:
                break
            batch, stop = self._collect(item)
            self._answer(batch)
        while True:  # anything queued behind the stop marker fails rather than hangs
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                item[1].set_exception(BatcherClosedError("the text query batcher is closed"))

    def _answer(self, batch: Sequence[tuple[str, Future]]) -> None:
        texts = list(dict.fromkeys(text for text, _ in batch))  # a text asked twice is encoded once
        try:
            vectors = np.asarray(self._encode_texts(texts), dtype=np.float32)
            if vectors.shape[0] != len(texts):
                raise RuntimeError(f"the encoder returned {vectors.shape[0]} vectors for {len(texts)} texts")
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the encoder's error
            for _, future in batch:
                future.set_exception(exc)
            return
        row = {text: i for i, text in enumerate(texts)}
        self.batches += 1
        self.texts += len(batch)
        for text, future in batch:
            future.set_result(vectors[row[text]].copy())


__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_WINDOW_S", "BatcherClosedError", "TextQueryBatcher"]
