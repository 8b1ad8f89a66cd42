"""CLSP's two training objectives.

Stage 1 is CLIP's symmetric InfoNCE with one caption per clip. Stage 2 pairs every clip with two
captions (multi-positive): speech->text uses soft targets of 0.5 on each of the clip's captions,
text->speech stays one-hot (each caption has exactly one clip). Which two captions a step uses is a
task mix: "global + fine" or "two fine", with the "two fine" share rising linearly from 0.05 to 0.5
over stage 2, so the model first aligns the coarse description and then learns to separate the
fine-grained ones.

`AttributeClassifiers` is an optional training aid that is not part of the published recipe: linear
classifiers over the joint space, shared by both modalities, predicting the corpus's labelled
attributes from speech embeddings and from fine-caption embeddings. Contrastive learning alone
favours whatever separates a batch most easily (gender, channel, whisper) and leaves subtle factors
(loudness, pace) nearly unused; the shared classifiers make every labelled factor a direction of the
space that speech and text must agree on. They are dropped when the model is exported.

`caption_class_loss` is a second training aid, also not in the published recipe: the classes of each
labelled attribute are described by short attribute captions ("Someone who talks rapidly."), encoded by
the text branch, and speech and fine-caption embeddings are classified against them, as zero-shot
classification does at test time. The free linear classifiers above make each attribute a direction
of the space; this one ties that direction to how a short text names it, which a long caption that
mixes ten facts does not, so a one-fact query or prompt lands where the matching voices are.

`PaceRegressor` is a third aid, also not in the published recipe: a linear map from the speech
embedding to the clip's log speaking-rate factor (standardised), trained by mean squared error. Five
rate bins tell the model only which side of a cut a clip falls on; the continuous factor tells it how
far, which is what pace on an unseen voice must be judged by (the model card measures the gap).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: Label value meaning "unknown for this clip" (cross-entropy's ignore_index).
UNKNOWN_LABEL = -100


def clip_loss(speech: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE for [B, D] speech and [B, D] text embeddings paired by row."""
    logits = scale * speech @ text.T
    targets = torch.arange(speech.shape[0], device=speech.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def multi_positive_loss(speech: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Stage-2 loss for [B, D] speech and [2B, D] text, where texts 2i and 2i+1 belong to clip i.

    speech->text: cross-entropy against soft targets (0.5, 0.5) on the clip's two captions.
    text->speech: ordinary one-hot cross-entropy over the B clips.
    """
    batch = speech.shape[0]
    if text.shape[0] != 2 * batch:
        raise ValueError(f"expected {2 * batch} captions for {batch} clips, got {text.shape[0]}")
    logits = scale * speech @ text.T  # [B, 2B]
    owner = torch.arange(2 * batch, device=speech.device) // 2  # clip index of each caption
    soft_targets = (owner[None, :] == torch.arange(batch, device=speech.device)[:, None]).to(logits.dtype) * 0.5
    speech_to_text = -(soft_targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    text_to_speech = F.cross_entropy(logits.T, owner)
    return 0.5 * (speech_to_text + text_to_speech)


def two_fine_share(step: int, total_steps: int, start: float = 0.05, end: float = 0.5) -> float:
    """Probability that a stage-2 step uses "two fine" captions (else "global + fine"): linear ramp."""
    if total_steps <= 1:
        return end
    progress = min(max(step / (total_steps - 1), 0.0), 1.0)
    return start + (end - start) * progress


def encode_labels(vocabulary: dict[str, list[str]], rows: list[dict[str, str | None]]) -> torch.Tensor:
    """[N, A] class indices of each row's attribute values; unknown or unseen values -> UNKNOWN_LABEL."""
    indices = {name: {value: k for k, value in enumerate(values)} for name, values in vocabulary.items()}
    return torch.tensor(
        [[indices[name].get(row.get(name), UNKNOWN_LABEL) for name in vocabulary] for row in rows], dtype=torch.long
    )


def known_label_cross_entropy(embeddings: torch.Tensor, labels: torch.Tensor,
                              logits_of: list[Callable[[torch.Tensor], torch.Tensor]]) -> torch.Tensor:
    """Mean over attributes k of the cross-entropy of `logits_of[k](embeddings)` against `labels[:, k]`,
    skipping attributes with no known label in the batch (a batch with none gives a zero that still
    backpropagates)."""
    losses = [F.cross_entropy(logits(embeddings), labels[:, k], ignore_index=UNKNOWN_LABEL)
              for k, logits in enumerate(logits_of) if bool((labels[:, k] != UNKNOWN_LABEL).any())]
    return torch.stack(losses).mean() if losses else embeddings.sum() * 0.0


def caption_class_loss(embeddings: torch.Tensor, classes: list[torch.Tensor], labels: torch.Tensor,
                       scale: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of classifying [N, D] embeddings against each attribute's [C_k, D] class
    embeddings (scaled cosines), over the attributes with at least one known label in `labels` [N, A]."""
    return known_label_cross_entropy(
        embeddings, labels, [lambda x, c=class_embeddings: scale * x @ c.T for class_embeddings in classes])


class AttributeClassifiers(nn.Module):
    """One linear classifier per attribute over the (normalised) joint embedding space."""

    def __init__(self, dim: int, vocabulary: dict[str, list[str]]) -> None:
        super().__init__()
        self.vocabulary = {name: list(values) for name, values in vocabulary.items()}
        self.heads = nn.ModuleList(nn.Linear(dim, len(values)) for values in self.vocabulary.values())

    def encode_labels(self, rows: list[dict[str, str | None]]) -> torch.Tensor:
        """[N, A] class indices of each row's attribute values; unknown or unseen values -> UNKNOWN_LABEL."""
        return encode_labels(self.vocabulary, rows)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the attributes that have at least one known label in the batch."""
        return known_label_cross_entropy(embeddings, labels, list(self.heads))


class PaceRegressor(nn.Module):
    """A linear regression of a standardised scalar (log speaking-rate factor) from the joint space."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1)

    def forward(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the rows whose target is known (NaN = unknown; none known gives a
        zero that still backpropagates)."""
        known = ~torch.isnan(targets)
        if not bool(known.any()):
            return embeddings.sum() * 0.0
        return F.mse_loss(self.linear(embeddings[known]).squeeze(-1), targets[known])
