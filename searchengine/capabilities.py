"""What each model can rank, declared from its measured figures (or, for the released models, from what
their authors evaluate), and notices for what it cannot.

A description can ask for things no part of the search scores: clsp-mini never heard an emotion
described and ranks accent at chance, and no attribute measured at indexing reads either from the
signal. Such words still move the query vector, but the ranking they give is noise. Rather than stay
silent, a search says so (`notices`), and names the models that can rank it.

Declarations:
- A bundled checkpoint carries `capabilities.json` next to its weights, written from its model card's
  figures for exactly those weights (`model_id`): zero-shot accuracy per property with the number of
  classes, precision@10 of short queries with their base rate, and the properties it was never trained
  on. A property *ranks* when its figure clears chance by half the distance to perfect
  (`RANK_MARGIN`): gender 0.964 of 2 classes does, accent 0.054 of 14 (chance 0.071) does not.
- The released CLSP (yfyeung/CLSP) is declared from what its authors report (`RELEASED_CLSP`): it is
  trained on real speech with free-text style captions, and its paper (arXiv 2601.03065) evaluates
  zero-shot paralinguistic classification, emotion among the tasks. Nothing of it is measured here.
- ParaSpeechCLAP (ajd12342/paraspeechclap) is declared per released checkpoint, by its file name
  (`PARASPEECHCLAP`), from its authors' code: the situational checkpoint is what their README scores
  on zero-shot classification of 21 utterance-level styles, most of them emotions (reported); the
  combined one is trained on those captions too but scored by them on retrieval only (unmeasured, and
  said so); the intrinsic one is trained on speaker-level tags only (cannot). A checkpoint under
  any other name (a fine-tune) declares nothing. Nothing of it is measured here either.
- Any other model declares nothing: its figures are unknown, and no notice claims otherwise.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RANK_MARGIN = 0.5
"""A figure shows the model ranks a property when it is at least chance + RANK_MARGIN * (1 - chance)."""

DECLARATION_FILE = "capabilities.json"
WEIGHTS_DIR = Path(__file__).resolve().parent / "model" / "weights"

RANKS, CANNOT, UNMEASURED, REPORTED = "ranks", "cannot", "unmeasured", "reported"

RELEASED_CLSP_NAME = "the released CLSP (yfyeung/CLSP)"
RELEASED_CLSP: dict[str, str] = {
    "emotion": "its authors report zero-shot emotion classification (arXiv 2601.03065); not measured here",
    "gender": "its authors report zero-shot gender classification (arXiv 2601.03065); not measured here",
    "age": "its authors report zero-shot age classification (arXiv 2601.03065); not measured here",
}
"""What the released CLSP's authors report it ranks (no figures are copied: none were measured here)."""

PARASPEECHCLAP_NAME = "ParaSpeechCLAP (ajd12342/paraspeechclap)"
PARASPEECHCLAP: dict[str, dict[str, tuple[str, str]]] = {
    "paraspeechclap-situational": {"emotion": (REPORTED, (
        "its authors score this checkpoint on zero-shot classification of 21 situational styles, most of them "
        "emotions (angry, happy, saddened, scared, disgusted, ...; their README, Evaluation, with "
        "configs/eval/classification/situational.yaml); not measured here"))},
    "paraspeechclap-combined": {"emotion": (UNMEASURED, (
        "trained on the situational (emotion) captions as well as the intrinsic ones (configs/train/combined.yaml), "
        "but its authors score it on retrieval, not on emotion classification; not measured here"))},
    "paraspeechclap-intrinsic": {"emotion": (CANNOT, (
        "this checkpoint is trained on speaker-level (intrinsic) tags only (configs/train/intrinsic.yaml: pitch, "
        "rhythm, clarity, texture, volume), no emotion among them"))},
}
"""ParaSpeechCLAP's released checkpoints, by file stem: what their authors' code trains and scores each on."""

WHO_CAN: dict[str, str] = {
    "emotion": f"{RELEASED_CLSP_NAME}, whose paper reports zero-shot emotion classification, or the situational "
               f"checkpoint of {PARASPEECHCLAP_NAME}, which its authors score on 21 situational styles, most of "
               "them emotions (neither measured here). Get one with `clsp-search models download clsp` (or "
               "`paraspeechclap`) and index with `--model clsp` (or `--model "
               "models/paraspeechclap/paraspeechclap-situational.pth.tar`); see README, Models",
    "accent": "no model clsp-search can load has a measured accent figure; if your manifest has an accent "
              "column, filter on it",
}
"""For a property a model cannot rank: which model can, as far as anything is known."""


@dataclass(frozen=True)
class Capabilities:
    """One model's declaration: property -> (status, evidence)."""

    model_id: str
    declared: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    source: str = ""

    def status(self, prop: str) -> str:
        return self.declared.get(prop, (UNMEASURED, ""))[0]

    def evidence(self, prop: str) -> str:
        return self.declared.get(prop, (UNMEASURED, "no figure"))[1]

    def to_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "source": self.source,
                "properties": {p: {"status": s, "evidence": e} for p, (s, e) in sorted(self.declared.items())}}


def from_declaration(data: Mapping[str, Any]) -> Capabilities:
    """A `capabilities.json` read into statuses by the rule in the module doc."""
    declared: dict[str, tuple[str, str]] = {}
    for prop, fig in (data.get("zero_shot") or {}).items():
        acc, classes = float(fig["weighted_accuracy"]), int(fig["classes"])
        chance = 1.0 / classes
        ok = acc >= chance + RANK_MARGIN * (1.0 - chance)
        declared[prop] = (RANKS if ok else CANNOT,
                          f"zero-shot accuracy {acc:.3f} over {classes} classes (chance {chance:.3f})")
    for prop, fig in (data.get("short_queries") or {}).items():
        if prop in declared:
            continue
        p10, base = float(fig["precision_at_10"]), float(fig["base_rate"])
        ok = p10 >= base + RANK_MARGIN * (1.0 - base)
        declared[prop] = (RANKS if ok else CANNOT,
                          f"precision@10 {p10:.2f} for \"{fig['query']}\" (base rate {base:.2f})")
    for prop, why in (data.get("not_trained") or {}).items():
        declared[prop] = (CANNOT, str(why))
    return Capabilities(str(data.get("model_id", "")), declared, str(data.get("measured_on", "")))


@functools.lru_cache(maxsize=8)
def _bundled() -> dict[str, Capabilities]:
    """Declarations of the bundled checkpoints, by the model id they were measured on."""
    out: dict[str, Capabilities] = {}
    if WEIGHTS_DIR.is_dir():
        for path in sorted(WEIGHTS_DIR.glob(f"*/{DECLARATION_FILE}")):
            caps = from_declaration(json.loads(path.read_text(encoding="utf-8")))
            out[caps.model_id] = caps
    return out


def capabilities_for(model_id: str, encoder: Any = None) -> Capabilities:
    """What the model with this id declares (nothing for a model with no declaration).

    Bundled declarations apply to the exact weights they were measured on: retrained weights under
    the same name declare nothing until they are measured."""
    bundled = _bundled().get(model_id)
    if bundled is not None:
        return bundled
    kind = type(encoder).__name__ if encoder is not None else ""
    if kind == "ReleasedClspEncoder":
        return Capabilities(model_id, {p: (REPORTED, e) for p, e in RELEASED_CLSP.items()},
                            "what its authors report; not measured here")
    if kind == "ParaSpeechClapEncoder" and str(getattr(encoder, "name", "")) in PARASPEECHCLAP:
        return Capabilities(model_id, PARASPEECHCLAP[str(encoder.name)],
                            "what its authors train and score this checkpoint on; not measured here")
    return Capabilities(model_id)


def notices(uncovered: Iterable[Any], caps: Capabilities, model_name: str,
            columns: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One notice per unmeasured property the query names that the model declares it cannot rank.

    `uncovered` holds `searchengine.understanding.Uncovered` items (words + property); `columns` are
    the collection's filterable columns, so a notice can point at a metadata column that holds the
    property (a manifest's `emotion` or `accent`)."""
    words: dict[str, list[str]] = {}
    for u in uncovered:
        if u.property and caps.status(u.property) == CANNOT:
            words.setdefault(u.property, []).append(u.words)
    present = set(columns)
    out = []
    for prop, said in words.items():
        quoted = ", ".join(f"'{w}'" for w in said)
        column = prop if prop in present else None
        message = (f"{model_name} cannot rank {prop} ({quoted}): {caps.evidence(prop)}; and no attribute "
                   f"measured at indexing covers it, so these words do not select for it.")
        if column:
            message += f" This collection has a '{column}' column: filter on it."
        out.append({"property": prop, "words": said, "model_id": caps.model_id, "level": "warning",
                    "message": message, "who_can": WHO_CAN.get(prop), "filter_column": column})
    return out


__all__ = ["CANNOT", "Capabilities", "RANKS", "REPORTED", "UNMEASURED", "capabilities_for", "from_declaration",
           "notices"]
