"""Combining text heads tuned apart into one model (`clsp-search combine-text-heads`).

`tune-text` refits only the text head against a locked speech side, and two runs with different seeds
end in different heads whose figures differ by several points. Heads tuned against the same speech side
and through the same text-tower inputs (the same token memory: `tune-text --memory-from`) embed text in
the same space, so their embeddings can be averaged (`heads.HeadEnsemble`). The combined checkpoint keeps
the first model's speech side byte for byte: a collection indexed with any of the members keeps its
speech index, and only text queries change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from searchengine.model.checkpoint import save_checkpoint
from searchengine.model.clsp import CLSP
from searchengine.model.encoder import ClspEncoder
from searchengine.model.heads import HeadEnsemble
from searchengine.model.registry import load_model

TEXT_HEAD_PREFIX = "text_head."


def _member_heads(model: CLSP) -> list[torch.nn.Module]:
    """A model's text heads: the one, or each member of an ensemble."""
    head = model.text_head
    return list(head.members) if isinstance(head, HeadEnsemble) else [head]


def _shared_state(model: CLSP) -> dict[str, torch.Tensor]:
    """Everything but the text head: what every member must have in common."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(TEXT_HEAD_PREFIX)}


def _without_tuning(config: dict[str, Any]) -> dict[str, Any]:
    """The architecture part of a config, which every member must share (runs differ in their records)."""
    return {k: v for k, v in config.items() if k not in ("text_tuning", "text_head_members", "text_head_ensemble")}


def combine_text_heads(models: list[str], out: str | Path) -> Path:
    """Write one checkpoint whose text head averages the text heads of `models` (names or directories)."""
    if len(models) < 2:
        raise ValueError(f"combining needs at least two models, got {len(models)}")
    encoders = [load_model(name, device="cpu") for name in models]
    for name, encoder in zip(models, encoders, strict=True):
        if not isinstance(encoder, ClspEncoder):
            raise ValueError(f"{name} is not a clsp-search checkpoint; only their text heads can be combined")
    first = encoders[0].model
    if first.config["text_tower"].get("trainable"):
        raise ValueError(f"{models[0]} has a fine-tuned text tower; only heads over a frozen tower can be combined")
    shared = _shared_state(first)
    for name, encoder in zip(models[1:], encoders[1:], strict=True):
        if _without_tuning(encoder.model.config) != _without_tuning(first.config):
            raise ValueError(f"{name} has another architecture than {models[0]}; combine heads of one model's runs")
        other = _shared_state(encoder.model)
        differing = sorted(k for k in shared if not torch.equal(shared[k], other[k]))
        if differing:
            raise ValueError(
                f"{name} differs from {models[0]} outside the text head ({', '.join(differing[:3])}"
                f"{'...' if len(differing) > 3 else ''}): heads combine only when tuned against the same speech "
                "side and through the same token memory (tune-text --model STEP1 --memory-from MODEL)")
    heads = [head for encoder in encoders for head in _member_heads(encoder.model)]
    members = [{"model_id": encoder.model_id, "text_tuning": encoder.model.config.get("text_tuning")}
               for encoder in encoders]
    # The first model, with every member's head in its place: its speech side and tower are the shared ones.
    first.text_head = HeadEnsemble(heads)
    first.config = {**_without_tuning(first.config), "text_head_members": len(heads), "text_head_ensemble": members}
    return save_checkpoint(first, out)

