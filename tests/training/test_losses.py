"""The training objectives against hand computations."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from training.losses import clip_loss, multi_positive_loss, two_fine_share


def _log_softmax(row: list[float]) -> list[float]:
    total = math.log(sum(math.exp(v) for v in row))
    return [v - total for v in row]


def test_clip_loss_matches_hand_computation():
    speech = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    scale = torch.tensor(2.0)
    logits = [[2 * 0.6, 0.0], [2 * 0.8, 2 * 1.0]]  # scale * speech @ text.T
    s2t = -(_log_softmax(logits[0])[0] + _log_softmax(logits[1])[1]) / 2
    columns = [[logits[0][0], logits[1][0]], [logits[0][1], logits[1][1]]]
    t2s = -(_log_softmax(columns[0])[0] + _log_softmax(columns[1])[1]) / 2
    assert float(clip_loss(speech, text, scale)) == pytest.approx((s2t + t2s) / 2, rel=1e-6)


def test_multi_positive_loss_uses_half_targets_one_way_and_one_hot_the_other():
    speech = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])  # captions 0,1 -> clip 0; 2,3 -> clip 1
    scale = torch.tensor(3.0)
    logits = (scale * speech @ text.T).tolist()  # [2, 4]
    s2t = 0.0
    for clip, row in enumerate(logits):
        log_p = _log_softmax(row)
        s2t += -(0.5 * log_p[2 * clip] + 0.5 * log_p[2 * clip + 1])
    s2t /= 2
    t2s = 0.0
    for caption in range(4):
        column = [logits[0][caption], logits[1][caption]]
        t2s += -_log_softmax(column)[caption // 2]
    t2s /= 4
    assert float(multi_positive_loss(speech, text, scale)) == pytest.approx((s2t + t2s) / 2, rel=1e-6)


def test_multi_positive_loss_needs_two_captions_per_clip():
    with pytest.raises(ValueError, match="expected 4 captions"):
        multi_positive_loss(torch.zeros(2, 3), torch.zeros(3, 3), torch.tensor(1.0))


def test_two_fine_share_rises_linearly_from_5_to_50_percent():
    assert two_fine_share(0, 101) == pytest.approx(0.05)
    assert two_fine_share(50, 101) == pytest.approx(0.275)
    assert two_fine_share(100, 101) == pytest.approx(0.5)
    assert two_fine_share(500, 101) == pytest.approx(0.5)


def test_attribute_classifiers_score_known_labels_only():
    from training.losses import UNKNOWN_LABEL, AttributeClassifiers

    torch.manual_seed(0)
    classifiers = AttributeClassifiers(4, {"gender": ["female", "male"], "noise": ["clean", "noisy", "very noisy"]})
    labels = classifiers.encode_labels([{"gender": "male", "noise": None}, {"gender": "female", "noise": "hum"},
                                        {"gender": "female", "noise": "noisy"}])
    assert labels.tolist() == [[1, UNKNOWN_LABEL], [0, UNKNOWN_LABEL], [0, 1]]
    embeddings = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1).detach().requires_grad_()
    gender = torch.nn.functional.cross_entropy(classifiers.heads[0](embeddings), labels[:, 0])
    noise = torch.nn.functional.cross_entropy(classifiers.heads[1](embeddings[2:]), labels[2:, 1])
    assert torch.allclose(classifiers(embeddings, labels), (gender + noise) / 2)
    # a batch with no known label at all contributes nothing (and still backpropagates)
    nothing = classifiers(embeddings, torch.full((3, 2), UNKNOWN_LABEL))
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_caption_class_loss_classifies_against_class_texts_with_known_labels_only():
    from training.losses import UNKNOWN_LABEL, caption_class_loss, encode_labels

    torch.manual_seed(1)
    labels = encode_labels({"gender": ["female", "male"], "rate": ["fast", "medium", "slow"]},
                           [{"gender": "male", "rate": None}, {"gender": "female", "rate": "slow"},
                            {"gender": None, "rate": "fast"}])
    assert labels.tolist() == [[1, UNKNOWN_LABEL], [0, 2], [UNKNOWN_LABEL, 0]]
    normalise = functools.partial(torch.nn.functional.normalize, dim=-1)
    speech, gender, rate = normalise(torch.randn(3, 4)), normalise(torch.randn(2, 4)), normalise(torch.randn(3, 4))
    scale = torch.tensor(10.0)
    by_hand_gender = -(torch.log_softmax(scale * speech[:2] @ gender.T, dim=1)[[0, 1], [1, 0]]).mean()
    by_hand_rate = -(torch.log_softmax(scale * speech[1:] @ rate.T, dim=1)[[0, 1], [2, 0]]).mean()
    loss = caption_class_loss(speech, [gender, rate], labels, scale)
    assert torch.allclose(loss, (by_hand_gender + by_hand_rate) / 2)
    # the right class text close to the speech embedding gives a lower loss than the wrong one
    aligned = caption_class_loss(speech[:1], [torch.stack([-speech[0], speech[0]])], labels[:1, :1], scale)
    crossed = caption_class_loss(speech[:1], [torch.stack([speech[0], -speech[0]])], labels[:1, :1], scale)
    assert aligned < crossed
    nothing = caption_class_loss(speech.requires_grad_(), [gender, rate], torch.full((3, 2), UNKNOWN_LABEL), scale)
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_pace_regressor_scores_known_targets_only_and_learns_a_linear_pace():
    from training.losses import PaceRegressor

    torch.manual_seed(0)
    regressor = PaceRegressor(4)
    embeddings = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1).detach().requires_grad_()
    targets = torch.tensor([0.5, float("nan"), -1.0])
    expected = torch.nn.functional.mse_loss(regressor.linear(embeddings[[0, 2]]).squeeze(-1), targets[[0, 2]])
    assert torch.allclose(regressor(embeddings, targets), expected)
    nothing = regressor(embeddings, torch.full((3,), float("nan")))
    assert nothing.item() == 0.0 and nothing.requires_grad
    # a pace that is one direction of the space is recovered
    points = torch.randn(256, 4)
    pace = 2.0 * points[:, 1]
    optimizer = torch.optim.Adam(regressor.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss = regressor(points, pace)
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-3
