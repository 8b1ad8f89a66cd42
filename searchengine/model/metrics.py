"""Retrieval metrics exactly as the CLSP evaluation computes them.

For every query the rank is the number of candidates scored above its true pair (0 = first).
R@k is the share of queries with rank < k; "mAP@10" is the mean of 1 / (rank + 1) over queries with
rank < 10 (0 otherwise), which with one positive per query is MRR@10.
"""

from __future__ import annotations

import numpy as np


def ranks_of_true_pairs(similarity: np.ndarray) -> np.ndarray:
    """similarity[i, j] = score of candidate j for query i; the true candidate of query i is i."""
    true = np.diagonal(similarity)[:, None]
    return (similarity > true).sum(axis=1)


def scores_from_ranks(ranks: np.ndarray) -> dict[str, float]:
    ranks = np.asarray(ranks)
    return {
        "R@1": float(np.mean(ranks < 1)),
        "R@5": float(np.mean(ranks < 5)),
        "R@10": float(np.mean(ranks < 10)),
        "mAP@10": float(np.mean(np.where(ranks < 10, 1.0 / (ranks + 1), 0.0))),
    }


def retrieval_metrics(speech: np.ndarray, text: np.ndarray) -> dict[str, dict[str, float]]:
    """Speech->text and text->speech scores for row-paired [N, D] embeddings."""
    similarity = speech @ text.T
    return {
        "speech_to_text": scores_from_ranks(ranks_of_true_pairs(similarity)),
        "text_to_speech": scores_from_ranks(ranks_of_true_pairs(similarity.T)),
    }
