"""Training data drawn from a style corpus: attribute labels, one-fact class captions, pace targets.

Both training commands read the manifest through `searchengine.model.data` (the core's one source
reader) and turn the attributes the corpus generator writes into the targets of the auxiliary losses
(`training.losses`): class labels per attribute, short one-attribute captions per class, and each
clip's standardised log speaking-rate factor.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from searchengine.corpus.captions import attribute_captions
from searchengine.model.data import Clip

#: Manifest attributes the shared classifiers learn when attribute_loss_weight > 0.
ATTRIBUTE_TARGETS = ("gender", "age", "accent", "pitch_level", "pitch_variation", "speaking_rate", "loudness",
                     "whisper", "noise", "reverb", "channel")


def label_vocabulary(rows: list[dict[str, str | None]], names: tuple[str, ...]) -> dict[str, list[str]]:
    """Values seen in `rows` for each name, keeping only attributes with at least two values."""
    vocabulary = {name: sorted({r[name] for r in rows if r.get(name) is not None}) for name in names}
    return {name: values for name, values in vocabulary.items() if len(values) >= 2}  # type: ignore[misc]


def _fact(value: str) -> str | bool:
    """A label string back to the fact the caption grammar takes (whisper is a bool there)."""
    return {"True": True, "False": False}.get(value, value)


def attribute_caption_classes(vocabulary: dict[str, list[str]], pools: tuple[str, ...] = ("train",),
                              ) -> tuple[dict[str, list[list[int]]], list[str]]:
    """Short one-fact captions for every class of every attribute in `vocabulary`, from the given phrasing
    pools: ({attribute: [[indices into phrases of class 0], [class 1], ...]}, phrases)."""
    classes: dict[str, list[list[int]]] = {}
    phrases: list[str] = []
    for name, values in vocabulary.items():
        classes[name] = []
        for value in values:
            captions = list(dict.fromkeys(c for pool in pools for c in attribute_captions(name, _fact(value), pool=pool)))
            classes[name].append(list(range(len(phrases), len(phrases) + len(captions))))
            phrases += captions
    return classes, phrases


def pace_targets(clips: list[Clip], n_train: int) -> torch.Tensor:
    """Each clip's log rate factor, standardised with the training clips' mean and spread (NaN where the
    manifest has none), so the regression term is of the size of the other losses."""
    values = [clip.attribute("rate_factor") for clip in clips]
    logs = np.array([math.log(v) if isinstance(v, (int, float)) and v > 0 else np.nan for v in values])
    train_logs = logs[:n_train]
    known = train_logs[~np.isnan(train_logs)]
    if len(known) < 2:
        raise ValueError("the corpus has no rate_factor attributes for --rate-regression-weight "
                         "(the generated corpus writes them; other corpora can leave the option at 0)")
    return torch.tensor((logs - known.mean()) / max(float(known.std()), 1e-6), dtype=torch.float32)


def attribute_rows(clips: list[Clip]) -> list[dict[str, str | None]]:
    """Each clip's categorical attributes as strings (None where the corpus has no value)."""
    rows = []
    for clip in clips:
        row = {}
        for name in ATTRIBUTE_TARGETS:
            value = clip.attribute(name)
            row[name] = None if value is None or isinstance(value, (list, dict)) else str(value)
        rows.append(row)
    return rows

