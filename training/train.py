"""`clsp-search train`: CLSP on a style corpus, stage 1 (symmetric InfoNCE) then stage 2 (multi-positive).

Frozen work is cached once (`training.features`: speech frames of every clip, frozen text-tower
features of every distinct caption), so an epoch only runs the small speech tower and the heads. The
epochs, validation on held-out voices, export of the best epoch and `--resume` are the shared loop's
(`training.loop.TrainingRun`). Runs are deterministic for a seed, also across `--resume`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchengine.corpus.captions import ATTRIBUTE_CAPTION_FACTORS
from searchengine.model.clsp import CLSP
from searchengine.model.config import get_model_config
from searchengine.model.data import read_manifest
from searchengine.model.metrics import retrieval_metrics
from training.data import (
    ATTRIBUTE_TARGETS,
    attribute_caption_classes,
    attribute_rows,
    label_vocabulary,
    pace_targets,
)
from training.features import cache_speech_frames, cache_text_features
from training.loop import RunSettings, TrainingRun, cpu_autocast, warmup_cosine
from training.losses import (
    AttributeClassifiers,
    PaceRegressor,
    caption_class_loss,
    clip_loss,
    encode_labels,
    multi_positive_loss,
    two_fine_share,
)

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"


@dataclass
class TrainSettings(RunSettings):
    config: str = "clsp-mini"
    stage1_epochs: int = 8
    stage2_epochs: int = 12
    #: Fine captions used per clip (the first k; 0 = all). Frozen text features are cached for the
    #: global caption plus these, so k bounds the one-off text-tower cost on a small CPU.
    fine_captions_per_clip: int = 2
    #: Weight of the shared attribute classifiers (loss.AttributeClassifiers); 0 = the paper's
    #: objectives alone. Needs labelled attributes in the manifest.
    attribute_loss_weight: float = 0.0
    #: Weight of classifying speech and fine-caption embeddings against short attribute captions
    #: (loss.caption_class_loss); 0 = off. Needs labelled attributes in the manifest.
    attribute_caption_weight: float = 0.0
    #: Weight of regressing each clip's log speaking-rate factor from its speech embedding
    #: (loss.PaceRegressor); 0 = off. Needs `rate_factor` in the manifest's attributes.
    rate_regression_weight: float = 0.0



class Trainer(TrainingRun):
    """Both towers' trainable parts, both heads and the temperature, over the cached features."""

    state_file = STATE_FILE
    log_file = LOG_FILE

    def __init__(self, corpus: Path, out: Path, settings: TrainSettings, log: Callable[[str], None] = print) -> None:
        super().__init__()
        settings.check()
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.log_lines = log
        torch.manual_seed(settings.seed)
        clips = read_manifest(corpus)
        # Held-out phrasings are never trained on: they measure generalisation to unseen wording.
        self.train_clips = [c for c in clips if c.split in ("train", None) and not c.heldout_phrasing]
        self.val_clips = [c for c in clips if c.split == "val" and not c.heldout_phrasing][: settings.max_val_clips]
        if not self.train_clips:
            raise ValueError(f"{corpus} has no training clips (split 'train', not heldout_phrasing)")
        self.config = get_model_config(settings.config)
        self.model = CLSP(self.config)
        tower = self.model.speech_tower
        if not hasattr(tower, "frontend_config"):
            raise ValueError("the CPU training recipe caches frontend frames; it needs the 'small' speech tower")
        if self.config["text_tower"].get("trainable"):
            raise ValueError("the CPU training recipe caches text-tower features; set text_tower.trainable false")
        cache = self.out / "cache"
        all_clips = self.train_clips + self.val_clips
        self.frames, self.offsets = cache_speech_frames(all_clips, tower.frontend_config, cache, settings.workers, log)
        self.n_train = len(self.train_clips)
        sample = np.asarray(self.frames[: self.offsets[self.n_train] : 7], dtype=np.float32)  # every 7th frame
        tower.set_feature_statistics(sample.mean(axis=0), sample.std(axis=0))
        del sample
        k = settings.fine_captions_per_clip or None
        for clip in all_clips:
            # Validation scores the LAST fine caption (as evaluation does); training uses the first k.
            clip.fine_captions = clip.fine_captions[:k] if clip.split != "val" else clip.fine_captions[-1:]
        captions = sorted({c.global_caption for c in all_clips} | {f for c in all_clips for f in c.fine_captions})
        self.caption_index = {caption: i for i, caption in enumerate(captions)}
        self.text_features = cache_text_features(self.model, captions, cache, log, dtype=settings.compute_dtype)
        self.global_ids = [self.caption_index[c.global_caption] for c in all_clips]
        self.fine_ids = [[self.caption_index[f] for f in c.fine_captions] for c in all_clips]
        # Everything trainable: the speech tower, both heads and the temperature (the frozen text
        # transformer has requires_grad off).
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.attributes: AttributeClassifiers | None = None
        rows = attribute_rows(all_clips)
        if settings.attribute_loss_weight > 0:
            vocabulary = label_vocabulary(rows[: self.n_train], ATTRIBUTE_TARGETS)
            if not vocabulary:
                raise ValueError(f"{corpus} has no labelled attributes for --attribute-loss-weight "
                                 f"(expected some of {', '.join(ATTRIBUTE_TARGETS)} in the manifest)")
            self.attributes = AttributeClassifiers(int(self.config["embed_dim"]), vocabulary)
            self.attribute_labels = self.attributes.encode_labels(rows)
            parameters += list(self.attributes.parameters())
        # Short attribute captions per class: {attribute: [[caption ids of class 0], [class 1], ...]}.
        self.class_captions: dict[str, list[list[int]]] = {}
        if settings.attribute_caption_weight > 0:
            vocabulary = label_vocabulary(rows[: self.n_train], ATTRIBUTE_CAPTION_FACTORS)
            if not vocabulary:
                raise ValueError(f"{corpus} has no labelled attributes for --attribute-caption-weight "
                                 f"(expected some of {', '.join(ATTRIBUTE_CAPTION_FACTORS)} in the manifest)")
            self.class_captions, phrases = attribute_caption_classes(vocabulary)
            self.class_caption_features = cache_text_features(self.model, phrases, cache, log,
                                                              dtype=settings.compute_dtype)
            self.class_caption_labels = encode_labels(vocabulary, rows)
        self.pace: PaceRegressor | None = None
        if settings.rate_regression_weight > 0:
            self.pace_targets = pace_targets(all_clips, self.n_train)
            self.pace = PaceRegressor(int(self.config["embed_dim"]))
            parameters += list(self.pace.parameters())
        self.optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)
        self.steps_per_epoch = math.ceil(self.n_train / settings.batch_size)
        self.scheduler = warmup_cosine(self.optimizer, settings.warmup_steps, self.steps_per_epoch * self.total_epochs)

    @property
    def total_epochs(self) -> int:
        return self.settings.stage1_epochs + self.settings.stage2_epochs

    # ------------------------------------------------------------------------------------ batching
    def _speech_batch(self, indices: list[int], rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        """Frames of clips; random crops of at most max_train_frames during training."""
        limit = int(self.config["speech_tower"].get("max_train_frames", 600))
        pieces = []
        for i in indices:
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            if rng is not None and end - start > limit:
                start += int(rng.integers(0, end - start - limit + 1))
                end = start + limit
            pieces.append(np.asarray(self.frames[start:end], dtype=np.float32))
        return self.model.speech_tower.collate(pieces)

    def _text(self, caption_ids: list[int], dtype: str = "float32") -> torch.Tensor:
        """Text embeddings of cached captions through the text head, computed in `dtype` (training passes
        compute_dtype; validation keeps float32) and returned as float32."""
        with cpu_autocast(dtype):
            return self.model.text_head(self.text_features[caption_ids]).float()

    # -------------------------------------------------------------------------------------- epochs
    def train_epoch(self) -> dict[str, Any]:
        settings = self.settings
        stage = 1 if self.epoch < settings.stage1_epochs else 2
        # Every source of randomness is re-seeded per epoch so that --resume continues identically.
        rng = np.random.default_rng([settings.seed, self.epoch])
        torch.manual_seed(settings.seed * 100003 + self.epoch)
        self.model.train()
        self.model.text_tower.eval()
        for aid in (self.attributes, self.pace):
            if aid is not None:
                aid.train()
        order = rng.permutation(self.n_train)
        losses, two_fine_steps = [], 0
        stage2_steps = self.steps_per_epoch * settings.stage2_epochs
        for step in range(self.steps_per_epoch):
            batch = [int(i) for i in order[step * settings.batch_size : (step + 1) * settings.batch_size]]
            if len(batch) < 2:
                continue
            # bf16 autocast when compute_dtype asks (the backward pass follows it); losses stay float32
            with cpu_autocast(settings.compute_dtype):
                speech = self.model.encode_speech(**self._speech_batch(batch, rng)).float()
            labels = self.attribute_labels[batch] if self.attributes is not None else None
            if stage == 1:
                text = self._text([self.fine_ids[i][rng.integers(len(self.fine_ids[i]))] for i in batch],
                                  settings.compute_dtype)
                loss = clip_loss(speech, text, self.model.scale())
                fine_rows = list(range(len(batch)))
            else:
                stage2_step = (self.epoch - settings.stage1_epochs) * self.steps_per_epoch + step
                two_fine = rng.random() < two_fine_share(stage2_step, stage2_steps)
                two_fine_steps += int(two_fine)
                ids, fine_rows = [], []
                for k, i in enumerate(batch):
                    fine = rng.permutation(len(self.fine_ids[i]))
                    second = self.fine_ids[i][fine[-1]]
                    first_is_fine = two_fine and len(fine) > 1
                    first = self.fine_ids[i][fine[0]] if first_is_fine else self.global_ids[i]
                    # Global captions leave some attributes unsaid; only fine captions are classified.
                    fine_rows += [2 * k, 2 * k + 1] if first_is_fine else [2 * k + 1]
                    ids += [first, second]
                text = self._text(ids, settings.compute_dtype)
                loss = multi_positive_loss(speech, text, self.model.scale())
            # Text rows come in equal groups per clip (1 in stage 1, 2 in stage 2): row // group = clip.
            owners = [row // (len(text) // len(batch)) for row in fine_rows]
            if self.attributes is not None:
                auxiliary = 0.5 * (self.attributes(speech, labels)
                                   + self.attributes(text[fine_rows], labels[owners]))
                loss = loss + settings.attribute_loss_weight * auxiliary
            if self.class_captions:
                classes = self._class_embeddings(rng)
                scale = self.model.scale().detach()
                caption_labels = self.class_caption_labels[batch]
                auxiliary = 0.5 * (caption_class_loss(speech, classes, caption_labels, scale)
                                   + caption_class_loss(text[fine_rows], classes, caption_labels[owners], scale))
                loss = loss + settings.attribute_caption_weight * auxiliary
            if self.pace is not None:
                loss = loss + settings.rate_regression_weight * self.pace(speech, self.pace_targets[batch])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for group in self.optimizer.param_groups for p in group["params"]], 5.0)
            self.optimizer.step()
            self.scheduler.step()
            losses.append(float(loss.detach()))
        return {"stage": stage, "loss": float(np.mean(losses)), "two_fine_steps": two_fine_steps,
                "logit_scale": float(self.model.scale().detach())}

    def _class_embeddings(self, rng: np.random.Generator) -> list[torch.Tensor]:
        """One randomly drawn attribute caption per class of each attribute, through the text head, so
        every wording must on its own point at the voices it describes. Every attribute's captions go
        through the head in one batch: the rows are independent, and one call costs far less than one per
        attribute (a dozen small products and their backward passes in every step)."""
        draws = [[group[int(rng.integers(len(group)))] for group in groups] for groups in self.class_captions.values()]
        with cpu_autocast(self.settings.compute_dtype):
            embeddings = self.model.text_head(self.class_caption_features[[i for ids in draws for i in ids]]).float()
        return list(embeddings.split([len(ids) for ids in draws]))

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Text->speech and speech->text R@1 on validation voices (global and last fine caption)."""
        if not self.val_clips:
            return {}
        self.model.eval()
        indices = list(range(self.n_train, self.n_train + len(self.val_clips)))
        speech = torch.cat([
            self.model.encode_speech(**self._speech_batch(indices[s : s + 64], None)) for s in range(0, len(indices), 64)
        ]).numpy()
        result = {}
        for kind, ids in (("global", [self.global_ids[i] for i in indices]),
                          ("fine", [self.fine_ids[i][-1] for i in indices])):
            text = self._text(ids).numpy()
            metrics = retrieval_metrics(speech, text)
            result[f"val_{kind}_t2s_R@1"] = metrics["text_to_speech"]["R@1"]
            result[f"val_{kind}_s2t_R@1"] = metrics["speech_to_text"]["R@1"]
        return result

    # ---------------------------------------------------------------------------------- persistence
    def provenance(self) -> dict[str, Any]:
        return {"training": {"corpus_clips_train": self.n_train, "corpus_clips_val": len(self.val_clips),
                             **asdict(self.settings)}}

    def trained_state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(),
                "attributes": self.attributes.state_dict() if self.attributes is not None else None,
                "pace": self.pace.state_dict() if self.pace is not None else None}

    def restore_trained_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.attributes is not None:
            self.attributes.load_state_dict(state["attributes"])
        if self.pace is not None:
            self.pace.load_state_dict(state["pace"])


def train(corpus: str | Path, out: str | Path, settings: TrainSettings | None = None, resume: bool = False,
          log: Callable[[str], None] = print) -> Path:
    """Train (or resume) and return the exported checkpoint directory."""
    trainer = Trainer(Path(corpus), Path(out), settings or TrainSettings(), log)
    trainer.start(resume)
    return trainer.run()
