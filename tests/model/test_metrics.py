"""Retrieval scores follow the CLSP definitions (rank of the true pair, R@k, mAP@10 = MRR@10)."""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.model.metrics import ranks_of_true_pairs, retrieval_metrics, scores_from_ranks


def test_ranks_count_candidates_scored_above_the_true_pair():
    similarity = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.7], [0.3, 0.2, 0.1]])
    assert ranks_of_true_pairs(similarity).tolist() == [0, 2, 2]


def test_scores_from_ranks():
    ranks = np.array([0, 1, 4, 9, 12])
    scores = scores_from_ranks(ranks)
    assert scores["R@1"] == pytest.approx(0.2)
    assert scores["R@5"] == pytest.approx(0.6)
    assert scores["R@10"] == pytest.approx(0.8)
    assert scores["mAP@10"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 0) / 5)


def test_both_directions_are_scored_separately():
    speech = np.eye(3)
    text = np.array([[1.0, 0, 0], [1.0, 0.1, 0], [0, 0, 1.0]])
    metrics = retrieval_metrics(speech, text)
    # speech 1 still finds its own caption first (0.1 vs 0), but caption 1 prefers speech 0 (1.0 vs 0.1)
    assert metrics["speech_to_text"]["R@1"] == pytest.approx(1.0)
    assert metrics["text_to_speech"]["R@1"] == pytest.approx(2 / 3)
    assert ranks_of_true_pairs((speech @ text.T).T).tolist() == [0, 1, 0]
