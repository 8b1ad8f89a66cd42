"""The CLSP evaluation protocol on any manifest with `global_caption` / `fine_captions`, or with
categorical labels alone (`gender`, `accent`, ...: a user's own real recordings rarely come with
captions): retrieval needs captions, zero-shot classification and style similarity need labels.

- Retrieval: the test set holds one clip per unique combination of categorical attributes, from
  test-split voices only (as the paper builds its test set, so that no two clips share a description).
  Speech->text and text->speech R@1/5/10 and mAP@10, separately for the global caption and for the
  fine-grained caption (the LAST of each clip's fine captions, as the paper). Clips whose captions
  use held-out phrasings are scored as their own subset. Beside them, every clip of the split's
  combinations is reworded from its manifest facts in the training and in the held-out phrasing pool
  and scored over that one gallery (`reworded_*`): the wording gap measured on more clips.
- Zero-shot classification: for every categorical attribute the manifest has, each class becomes a
  few prompts (one per template, averaged); weighted accuracy (overall) and unweighted accuracy (mean of per-class recalls).
- Zero-shot in held-out wording: the same classes, each described by the corpus's short one-fact
  captions from the held-out phrasing pool (`corpus.captions.attribute_captions(..., heldout=True)`),
  wording that no training caption used: zero-shot on held-out phrasings, not only held-out voices.
- Style similarity: Spearman / Kendall (and Pearson) correlation between the cosine of two clips'
  speech embeddings and the share of categorical attributes the two clips agree on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searchengine.model.data import Clip, read_manifest
from searchengine.model.metrics import retrieval_metrics

#: Attributes that define "the same description": a clip's speaker facts and binned style factors.
COMBINATION_ATTRIBUTES = ("gender", "age", "accent", "timbre", "pitch_level", "pitch_variation", "speaking_rate",
                          "loudness", "whisper", "noise", "reverb", "channel")
#: Attributes compared for style similarity (speaker identity facts plus style factors).
SIMILARITY_ATTRIBUTES = ("gender", "age", "accent", "pitch_level", "pitch_variation", "speaking_rate",
                         "loudness", "whisper", "noise", "reverb", "channel")


@dataclass(frozen=True)
class ZeroShotTask:
    """One classification: manifest values grouped into classes, each class described by prompts.

    Every class word is put into each template and the class is the mean of those prompts (prompt
    ensembling, as CLIP evaluates zero-shot), so no single wording decides the score.
    """

    attribute: str
    templates: tuple[str, ...]
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # prompt word -> manifest values
    name: str | None = None

    @property
    def key(self) -> str:
        return self.name or self.attribute


# Prompt words follow the vocabulary captions use; values not listed in `classes` map to themselves.
ZERO_SHOT_TASKS = (
    ZeroShotTask("gender", ("A {} speaker.", "The voice of a {} speaker.", "Speech from a {} voice.")),
    ZeroShotTask("pitch_level", ("A speaker with a {} voice.", "The voice is {}.", "Speech in a {} voice."),
                 {"low-pitched": ("very low", "low"), "medium-pitched": ("medium",), "high-pitched": ("high", "very high")},
                 name="pitch_level_3way"),
    ZeroShotTask("speaking_rate", ("A speaker talking at a {} pace.", "Speech at a {} speed.", "Someone speaking at a {} tempo."),
                 {"slow": ("very slow", "slow"), "normal": ("medium",), "fast": ("fast", "very fast")},
                 name="speaking_rate_3way"),
    ZeroShotTask("noise", ("A voice recorded {}.", "Speech captured {}."),
                 {"against a silent background": ("clean",), "with a light noise behind the voice": ("slightly noisy",),
                  "with a noticeable noise behind the voice": ("noisy",), "with a heavy noise behind the voice": ("very noisy",)}),
    ZeroShotTask("reverb", ("A voice recorded {}.", "Speech captured {}."),
                 {"close to the microphone": ("close",), "slightly distant, with a little room reverb": ("slightly distant",),
                  "at a distance in a reverberant room": ("distant",),
                  "far from the microphone in a large echoey hall": ("very distant",)}),
    ZeroShotTask("accent", ("A speaker with a {} accent.", "Speech with a {} accent.")),
)


def combination_key(clip: Clip) -> tuple:
    values = []
    for name in COMBINATION_ATTRIBUTES:
        value = clip.attribute(name)
        values.append(tuple(value) if isinstance(value, list) else value)
    return tuple(values)


def one_per_combination(clips: list[Clip]) -> list[Clip]:
    """First clip of each unique attribute combination, in manifest order."""
    seen: set[tuple] = set()
    kept = []
    for clip in clips:
        key = combination_key(clip)
        if key not in seen:
            seen.add(key)
            kept.append(clip)
    return kept


def select_split(clips: list[Clip], split: str | None) -> list[Clip]:
    if split in (None, "all") or all(c.split is None for c in clips):
        return clips
    return [c for c in clips if c.split == split]


def retrieval_report(encoder, clips: list[Clip], speech: np.ndarray,
                     captions: tuple[list[str], list[str]] | None = None) -> dict[str, Any]:
    """Both directions for the global and the fine captions of `clips`: the manifest's (its global
    caption and last fine caption), or `captions` (global texts, fine texts) written for them."""
    if captions is None:
        captions = [c.global_caption for c in clips], [c.fine_captions[-1] for c in clips]
    report: dict[str, Any] = {"clips": len(clips)}
    for kind, texts in zip(("global", "fine"), captions, strict=True):
        report[kind] = retrieval_metrics(speech, encoder.encode_text(texts))
    return report


#: Phrasing pools the retrieval set is reworded in, under their report names.
REWORDING_POOLS = {"reworded_training_pool": False, "reworded_heldout_pool": True}


def reworded_captions(clips: list[Clip], heldout: bool) -> tuple[list[str], list[str]] | None:
    """A global and a fine caption for each clip, written afresh from its manifest facts in the training
    (heldout=False) or held-out phrasing pool, the same for every run and model (seeded by pool and clip
    id). None when a clip's record has no attributes to describe, or values the caption grammar has no
    words for (a manifest the generator did not write).

    Why: the manifest's held-out-phrasing clips are few (57 test clips in the bundled corpus), so their
    R@1 moves by a clip's worth, 0.018, between models. Every clip of the retrieval set reworded in each
    pool gives both wordings over the same, larger gallery: a steadier measure of the wording gap.
    """
    from searchengine.corpus.captions import fine_captions, global_caption
    from searchengine.corpus.factors import facts_from_record

    if not clips or any(not clip.record.get("attributes") for clip in clips):
        return None
    pool = "heldout" if heldout else "train"
    global_texts, fine_texts = [], []
    try:
        for clip in clips:
            facts = facts_from_record(clip.record)
            rng = random.Random(f"clsp-eval-reword:{pool}:{clip.id}")
            global_texts.append(global_caption(facts, rng, heldout=heldout))
            fine_texts.append(fine_captions(facts, rng, n=1, heldout=heldout)[0])
    except (KeyError, ValueError, IndexError):  # values the caption grammar has no words for
        return None
    return global_texts, fine_texts


def _labelled(clips: list[Clip], task: ZeroShotTask) -> tuple[list[int], list[str], dict[str, tuple[str, ...]], np.ndarray] | None:
    """(indices of clips with a value the task classifies, class words present, word -> manifest values,
    true class index of each kept clip), or None with fewer than two classes present."""
    values = [clip.attribute(task.attribute) for clip in clips]
    present = sorted({v for v in values if isinstance(v, str)})
    if len(present) < 2:
        return None
    classes = dict(task.classes) if task.classes else {v: (v,) for v in present}
    value_to_class = {v: word for word, members in classes.items() for v in members}
    keep = [i for i, v in enumerate(values) if v in value_to_class]
    words = [w for w in classes if any(value_to_class[values[i]] == w for i in keep)]
    if len(words) < 2:
        return None
    return keep, words, classes, np.array([words.index(value_to_class[values[i]]) for i in keep])


def zero_shot_report(encoder, clips: list[Clip], speech: np.ndarray, task: ZeroShotTask) -> dict[str, Any] | None:
    labelled = _labelled(clips, task)
    if labelled is None:
        return None
    keep, words, _, truth = labelled
    probabilities = encoder.zero_shot(None, words, template=task.templates, speech_embeddings=speech[keep])
    predicted = probabilities.argmax(axis=1)
    return {"clips": len(keep), "prompts": [task.templates[0].format(w) for w in words],
            "templates": list(task.templates), **_accuracy(predicted, truth, words)}


def _accuracy(predicted: np.ndarray, truth: np.ndarray, words: list[str]) -> dict[str, Any]:
    recalls = {w: float(np.mean(predicted[truth == k] == k)) for k, w in enumerate(words) if np.any(truth == k)}
    return {"weighted_accuracy": float(np.mean(predicted == truth)),
            "unweighted_accuracy": float(np.mean(list(recalls.values()))), "per_class_recall": recalls}


def heldout_wording_report(encoder, clips: list[Clip], speech: np.ndarray, task: ZeroShotTask) -> dict[str, Any] | None:
    """Zero-shot with each class described by held-out-pool attribute captions (mean of their embeddings).

    Returns None where the manifest's values are not ones the caption grammar can describe.
    """
    from searchengine.corpus.captions import attribute_captions

    labelled = _labelled(clips, task)
    if labelled is None:
        return None
    keep, words, classes, truth = labelled
    prompts: dict[str, list[str]] = {}
    try:
        for word in words:
            prompts[word] = [c for v in classes[word] for c in attribute_captions(task.attribute, v, heldout=True)]
    except (KeyError, ValueError):
        return None
    predicted = (speech[keep] @ encoder.class_embeddings([prompts[w] for w in words]).T).argmax(axis=1)
    return {"clips": len(keep), "prompts": [prompts[w][0] for w in words],
            "prompts_per_class": {w: len(prompts[w]) for w in words}, **_accuracy(predicted, truth, words)}


def style_similarity_report(clips: list[Clip], speech: np.ndarray, pairs: int = 4000, seed: int = 0) -> dict[str, Any]:
    from scipy import stats

    if len(clips) < 3:
        return {}
    rng = random.Random(seed)
    agreement, cosine = [], []
    for _ in range(pairs):
        i, j = rng.sample(range(len(clips)), 2)
        shared = [(clips[i].attribute(a), clips[j].attribute(a)) for a in SIMILARITY_ATTRIBUTES]
        shared = [(x, y) for x, y in shared if x is not None and y is not None]
        if not shared:
            continue
        agreement.append(np.mean([x == y for x, y in shared]))
        cosine.append(float(speech[i] @ speech[j]))
    if len(set(agreement)) < 2:  # every pair agrees alike: no order to correlate with
        return {}
    return {
        "pairs": len(cosine),
        "spearman": float(stats.spearmanr(cosine, agreement).statistic),
        "kendall": float(stats.kendalltau(cosine, agreement).statistic),
        "pearson": float(stats.pearsonr(cosine, agreement).statistic),
    }


def evaluate(encoder, manifest: str | Path, split: str | None = "test", max_clips: int | None = None,
             show_progress: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole protocol; returns a JSON-ready dict."""
    clips = select_split(read_manifest(manifest, captioned_only=False), split)
    if max_clips:
        clips = clips[:max_clips]
    if not clips:
        raise ValueError(f"{manifest} has no clips in split {split!r}")
    captioned = [c for c in clips if c.global_caption and c.fine_captions]
    if not captioned and not any(_labelled(clips, task) for task in ZERO_SHOT_TASKS):
        raise ValueError(
            f"{manifest}: nothing to score in split {split!r}: give clips captions (global_caption and "
            "fine_captions) for retrieval, or labels with two or more values (gender, accent, ...) for "
            "zero-shot classification and style similarity")
    if log:
        log(f"embedding {len(clips)} clips of split {split!r} with {encoder.model_id}")
    speech = encoder.encode_speech([c.load_audio() for c in clips], show_progress=show_progress)
    index = {id(c): k for k, c in enumerate(clips)}

    def subset(members: list[Clip]) -> tuple[list[Clip], np.ndarray]:
        members = one_per_combination(members)
        return members, speech[[index[id(c)] for c in members]]

    result: dict[str, Any] = {"model": encoder.model_id, "manifest": str(manifest), "split": split, "retrieval": {}}
    groups = {"seen_phrasing": [c for c in captioned if not c.heldout_phrasing],
              "heldout_phrasing": [c for c in captioned if c.heldout_phrasing]}
    if not groups["heldout_phrasing"]:
        groups = {"all": captioned}
    for name, members in groups.items():
        if len(members) >= 2:
            subset_clips, subset_speech = subset(members)
            result["retrieval"][name] = retrieval_report(encoder, subset_clips, subset_speech)
    if len(captioned) >= 2:  # every combination of the split, reworded in each pool: one larger gallery
        every_clip, every_speech = subset(captioned)
        for name, heldout in REWORDING_POOLS.items():
            captions = reworded_captions(every_clip, heldout)
            if captions is not None:
                result["retrieval"][name] = retrieval_report(encoder, every_clip, every_speech, captions)
    result["zero_shot"] = {}
    for task in ZERO_SHOT_TASKS:
        report = zero_shot_report(encoder, clips, speech, task)
        if report is not None:
            result["zero_shot"][task.key] = report
    result["zero_shot_heldout_wording"] = {}
    for task in ZERO_SHOT_TASKS:
        report = heldout_wording_report(encoder, clips, speech, task)
        if report is not None:
            result["zero_shot_heldout_wording"][task.key] = report
    result["style_similarity"] = style_similarity_report(clips, speech)
    return result


def format_report(result: dict[str, Any]) -> str:
    """Human-readable tables of an evaluation result."""
    lines = [f"model {result['model']}  manifest {result['manifest']}  split {result['split']}"]
    for subset_name, report in result["retrieval"].items():
        lines.append(f"\nretrieval ({subset_name}, {report['clips']} clips, one per attribute combination)")
        lines.append(f"  {'captions':8} {'direction':15} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'mAP@10':>7}")
        for kind in ("global", "fine"):
            for direction in ("speech_to_text", "text_to_speech"):
                m = report[kind][direction]
                lines.append(f"  {kind:8} {direction:15} {m['R@1']:6.3f} {m['R@5']:6.3f} {m['R@10']:6.3f} {m['mAP@10']:7.3f}")
    for key, title in (("zero_shot", "zero-shot classification (evaluation prompts)"),
                       ("zero_shot_heldout_wording", "zero-shot classification (held-out wording)")):
        if result.get(key):
            lines.append(f"\n{title}")
        for name, report in (result.get(key) or {}).items():
            lines.append(f"  {name:20} weighted {report['weighted_accuracy']:.3f}  unweighted "
                         f"{report['unweighted_accuracy']:.3f}  ({report['clips']} clips, {len(report['prompts'])} classes)")
    similarity = result.get("style_similarity") or {}
    if similarity:
        lines.append(f"\nstyle similarity vs attribute agreement ({similarity['pairs']} pairs): spearman "
                     f"{similarity['spearman']:.3f}  kendall {similarity['kendall']:.3f}  pearson {similarity['pearson']:.3f}")
    return "\n".join(lines)
