"""The token memory's centroids: k-means of training captions' token states (FAISS).

The memory itself (`searchengine.model.token_memory.TokenMemory`) is part of the model at query time;
fitting it is training's business, done once by `clsp-search tune-text --token-memory N`.
"""

from __future__ import annotations

import numpy as np


def fit_centroids(states: np.ndarray, size: int, seed: int = 0, iterations: int = 15) -> tuple[np.ndarray, float]:
    """k-means centroids [size, dim] of token states [N, dim] (FAISS), and the median squared distance of
    the states to their nearest centroid (the memory's distance scale)."""
    import faiss

    states = np.ascontiguousarray(states, dtype=np.float32)
    if states.shape[0] < size:
        raise ValueError(f"a token memory of {size} centroids needs at least {size} token states, got {states.shape[0]}; "
                         "use a smaller size or more captions")
    kmeans = faiss.Kmeans(states.shape[1], size, niter=iterations, seed=seed)
    kmeans.train(states)
    index = faiss.IndexFlatL2(states.shape[1])
    index.add(kmeans.centroids)
    distances, _ = index.search(states[: min(len(states), 20000)], 1)
    return kmeans.centroids.astype(np.float32), float(np.median(distances))
