"""The token memory: token states blended toward soft nearest centroids of training token states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchengine.model.token_memory import TokenMemory


def memory_with(centroids: np.ndarray, scale: float = 1.0, **settings) -> TokenMemory:
    memory = TokenMemory(centroids.shape[1], {"size": len(centroids), **settings})
    memory.set_centroids(centroids, scale)
    return memory


def test_a_known_state_stays_and_an_unknown_one_moves_to_its_neighbour():
    centroids = np.eye(4, dtype=np.float32) * 10.0
    memory = memory_with(centroids, scale=1.0, neighbours=2, weight=0.5, temperature=0.5)
    known = torch.from_numpy(centroids[:1])
    torch.testing.assert_close(memory(known), known, atol=1e-4, rtol=0)  # its own centroid wins outright
    unknown = torch.tensor([[8.0, 1.0, 0.0, 0.0]])  # nearest centroid: the first one
    blended = memory(unknown)
    assert torch.linalg.norm(blended - known) < torch.linalg.norm(unknown - known)
    torch.testing.assert_close(blended, 0.5 * unknown + 0.5 * known, atol=1e-3, rtol=0)


def test_weight_zero_is_the_identity_and_chunks_do_not_change_the_result():
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(32, 8)).astype(np.float32)
    states = torch.from_numpy(rng.normal(size=(50, 8)).astype(np.float32))
    torch.testing.assert_close(memory_with(centroids, weight=0.0)(states), states)
    memory = memory_with(centroids, weight=0.7)
    torch.testing.assert_close(memory(states, chunk=7), memory(states))
    assert memory(states[:0]).shape == (0, 8)


def test_the_chunk_size_changes_speed_only_at_the_bundled_size():
    """Search and training blend in chunks of whatever size is fastest: rows must not depend on it beyond
    float32 rounding (a chunk of odd size can take another BLAS kernel; powers of two give the same bits)."""
    rng = np.random.default_rng(1)
    memory = memory_with(rng.normal(size=(4096, 384)).astype(np.float32), scale=30.0)
    states = torch.from_numpy(rng.normal(size=(5000, 384)).astype(np.float32))
    reference = memory(states, chunk=8192)
    for chunk in (1024, 512):
        assert torch.equal(memory(states, chunk=chunk), reference)
    torch.testing.assert_close(memory(states, chunk=333), reference, atol=1e-5, rtol=0)


def test_settings_and_centroid_shapes_are_checked():
    with pytest.raises(ValueError, match="unknown token_memory settings"):
        TokenMemory(8, {"size": 4, "radius": 1})
    with pytest.raises(ValueError, match="weight in"):
        TokenMemory(8, {"size": 4, "weight": 1.5})
    with pytest.raises(ValueError, match="expected centroids of shape"):
        TokenMemory(8, {"size": 4}).set_centroids(np.zeros((3, 8)), 1.0)
