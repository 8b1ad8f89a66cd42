"""Concurrent text queries answered in batches: each caller gets its own vector, errors reach the
callers of the failing batch only, and a closed batcher refuses work."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from searchengine.model.batching import BatcherClosedError, TextQueryBatcher

QUERIES = [f"{style} voice number {i}" for i, style in enumerate(
    ["a calm low", "a breathy high", "a fast loud", "a slow whispered", "a hoarse old", "a bright young",
     "a telephone", "a reverberant", "a monotone", "an excited", "a nasal", "a soft", "a deep",
     "a shaky", "a crisp", "a muffled"])]


def _concurrently(batcher: TextQueryBatcher, texts: list[str]) -> list[np.ndarray]:
    """Every text from its own thread, released together so they meet in the queue."""
    start = threading.Barrier(len(texts))

    def ask(text: str) -> np.ndarray:
        start.wait()
        return batcher.encode(text)

    with ThreadPoolExecutor(len(texts)) as pool:
        return list(pool.map(ask, texts))


def test_each_caller_gets_its_own_vector_from_shared_batches(encoder):
    expected = np.stack([encoder.encode_text([q])[0] for q in QUERIES])
    encoder.text_cache.clear()  # the batched calls must compute, not read what the loop above stored
    batcher = TextQueryBatcher(encoder.encode_text, window_s=0.03, max_batch=8)
    try:
        texts = QUERIES + QUERIES[:4]  # four texts asked twice, by different callers
        got = np.stack(_concurrently(batcher, texts))
    finally:
        batcher.close()
    want = np.concatenate([expected, expected[:4]])
    assert np.abs(got - want).max() < 1e-5
    assert batcher.texts == len(texts)
    assert batcher.batches < len(texts) // 2  # batched: 20 callers, at most 8 a call
    assert batcher.batches >= 3  # and never more than max_batch at once


def test_an_encoder_error_reaches_that_batch_only_and_the_worker_goes_on(encoder):
    def encode_refusing_bad_words(texts: list[str]) -> np.ndarray:
        if any("forbidden" in t for t in texts):
            raise ValueError("this text cannot be encoded")
        return encoder.encode_text(texts)

    batcher = TextQueryBatcher(encode_refusing_bad_words, window_s=0.0)
    try:
        with pytest.raises(ValueError, match="cannot be encoded"):
            batcher.encode("a forbidden query")
        after = batcher.encode("a calm voice")
        assert np.abs(after - encoder.encode_text(["a calm voice"])[0]).max() < 1e-5
    finally:
        batcher.close()
    with pytest.raises(BatcherClosedError):
        batcher.encode("anything")


def test_bad_settings_are_refused(encoder):
    with pytest.raises(ValueError, match="between 0 and 50 ms"):
        TextQueryBatcher(encoder.encode_text, window_s=1.0)
    with pytest.raises(ValueError, match="at least 1"):
        TextQueryBatcher(encoder.encode_text, max_batch=0)
