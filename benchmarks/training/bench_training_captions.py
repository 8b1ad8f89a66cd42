"""What the caption side of clsp-mini's training recipe costs, before and after two changes, on CPU under
bf16 autocast as the recipe runs:

- the one-fact attribute captions classified against in every training step: the text head called once per
  attribute (eleven calls, as before) against one call over all of them, forward and backward, per token
  as `tune-text` trains (`head_mean`) and pooled as `train` does;
- MiniLM's token states of manifest captions, which `tune-text` used to compute again although `train`
  had computed them for its own features: encoding them against reading them from the store `train` now
  keeps (`cache/token-states-*.npz`).

Each pair is timed in turn in one run (best of 3), so the ratio holds on a noisy machine.

    python -m benchmarks training_captions
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_model import best_of
from searchengine.corpus.captions import ATTRIBUTE_CAPTION_FACTORS
from searchengine.corpus.generate import manifest_record, plan_clip
from searchengine.corpus.voices import available_voices
from searchengine.model.clsp import CLSP
from searchengine.model.config import get_model_config
from searchengine.model.data import Clip
from training.data import attribute_caption_classes, attribute_rows, label_vocabulary
from training.features import cache_text_features, token_state_store
from training.loop import cpu_autocast


def _planned_clips(n: int) -> list[Clip]:
    """The first `n` clips the corpus generator plans (seed 0), as manifest records: captions and labels
    without rendering audio."""
    voices = available_voices()
    records = [manifest_record(plan_clip(i, 0, voices, None), 3.0) for i in range(n)]
    return [Clip(id=r["id"], path=Path(r["path"]), global_caption=r["global_caption"], fine_captions=r["fine_captions"],
                 record=r) for r in records]


def main() -> None:
    torch.manual_seed(0)
    config = get_model_config("clsp-mini")
    pooled_model = CLSP(config).train()
    token_model = CLSP({**config, "text_tower": {**config["text_tower"], "pooling": "head_mean"}}).train()
    clips = _planned_clips(400)
    vocabulary = label_vocabulary(attribute_rows(clips), ATTRIBUTE_CAPTION_FACTORS)
    classes, phrases = attribute_caption_classes(vocabulary, pools=("train", "wide"))
    groups = list(classes.values())
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        token_features = cache_text_features(token_model, phrases, Path(tmp) / "tokens", log=lambda _: None, dtype="bfloat16")
        pooled_features = cache_text_features(pooled_model, phrases, Path(tmp) / "pooled", log=lambda _: None, dtype="bfloat16")
    draws = [[group[int(rng.integers(len(group)))] for group in attribute] for attribute in groups]

    def per_attribute(head: torch.nn.Module, features) -> None:
        for _ in range(10):
            with cpu_autocast("bfloat16"):
                out = [head(features[ids]).float() for ids in draws]
            sum(o.pow(2).sum() for o in out).backward()

    def one_batch(head: torch.nn.Module, features) -> None:
        for _ in range(10):
            with cpu_autocast("bfloat16"):
                out = head(features[[i for ids in draws for i in ids]]).float().split([len(ids) for ids in draws])
            sum(o.pow(2).sum() for o in out).backward()

    print(f"clsp-mini training captions on cpu ({torch.get_num_threads()} threads), bf16 autocast; "
          f"{len(groups)} attributes, {sum(len(ids) for ids in draws)} class captions a step")
    print("| what | before | after | ratio |")
    print("|---|---|---|---|")
    for name, head, features in (("class captions through the per-token head (tune-text step)", token_model.text_head, token_features),
                                 ("class captions through the pooled head (train step)", pooled_model.text_head, pooled_features)):
        per_attribute(head, features)  # warm-up of both
        one_batch(head, features)
        before = best_of(3, lambda h=head, f=features: per_attribute(h, f))
        after = best_of(3, lambda h=head, f=features: one_batch(h, f))
        print(f"| {name} | {10 / before:.1f} steps/s | {10 / after:.1f} steps/s | {before / after:.2f}x |")

    # MiniLM's states of manifest captions: encoded by tune-text, against read from train's store.
    captions = sorted({c.global_caption for c in clips} | {f for c in clips for f in c.fine_captions})
    with tempfile.TemporaryDirectory() as tmp:
        base, tuned = Path(tmp) / "base", Path(tmp) / "tuned"
        pooled_model.eval()
        token_model.eval()
        started = time.perf_counter()
        cache_text_features(token_model, captions, Path(tmp) / "fresh", log=lambda _: None, dtype="bfloat16")
        encoded = time.perf_counter() - started
        cache_text_features(pooled_model, captions, base, log=lambda _: None, dtype="bfloat16")  # train writes the store
        assert (base / str(token_state_store(pooled_model, "bfloat16"))).is_file()
        started = time.perf_counter()
        cache_text_features(token_model, captions, tuned, log=lambda _: None, dtype="bfloat16", shared_dir=base)
        read = time.perf_counter() - started
    print(f"| MiniLM token states of {len(captions)} manifest captions (tune-text's caption pass) | encoded: "
          f"{len(captions) / encoded:.0f} captions/s | read from train's store: {len(captions) / read:.0f} captions/s | "
          f"{encoded / read:.1f}x |")
