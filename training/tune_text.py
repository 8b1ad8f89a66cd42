"""Retraining a model's text head on wider wording against its locked speech side (`clsp-search tune-text`).

A search box meets words the training captions never used. Training end to end on a wider caption
vocabulary helps with that but costs the rest: the small text head must fit many more wordings while
the speech side is still moving. Here the speech side of a trained model is locked (LiT's recipe with
the roles swapped: the locked tower is the one whose features already carry the attributes) and
only the text head is trained, on the corpus's own captions mixed with paraphrases of every clip
written from its facts with the wide phrasing pool (`corpus.captions`, `pool="wide"`).

Everything frozen is computed once and cached under `OUT/cache/`: speech embeddings of every training
and validation clip (whole clips, as search embeds them) and text-tower features of every caption. An
epoch is then only the text head over cached features, seconds on a CPU. Each epoch ends with a
validation pass (held-out voices, corpus captions and paraphrases) and a resumable state file; the
best epoch is exported as a checkpoint whose speech side is byte-for-byte the base model's, so a
collection's speech index stays valid.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchengine.corpus.captions import ATTRIBUTE_CAPTION_FACTORS, fine_captions, global_caption
from searchengine.corpus.factors import facts_from_record
from searchengine.model.data import Clip, read_manifest
from searchengine.model.encoder import ClspEncoder
from searchengine.model.metrics import retrieval_metrics
from searchengine.model.registry import load_model
from training.data import attribute_caption_classes, attribute_rows, label_vocabulary
from training.features import cache_speech_frames, cache_text_features
from training.kmeans import fit_centroids
from training.loop import RunSettings, TrainingRun, cpu_autocast, warmup_cosine
from training.losses import caption_class_loss, clip_loss, encode_labels

STATE_FILE = "tune_state.pt"
LOG_FILE = "tune_log.jsonl"
PARAPHRASE_POOL = "wide"


@dataclass
class TextTuneSettings(RunSettings):
    epochs: int = 300
    #: Share of training captions drawn from the paraphrases rather than the manifest's own captions.
    paraphrase_share: float = 0.7
    #: Paraphrase sets written per clip, each one global and `fine_per_set` fine captions.
    paraphrase_sets: int = 2
    fine_per_set: int = 4
    #: Share of training captions that are global (short) rather than fine-grained.
    global_share: float = 0.4
    #: Weight of classifying speech and fine-caption embeddings against one-fact attribute captions
    #: (training and wide pools), as in `clsp-search train`; 0 = off.
    attribute_caption_weight: float = 1.0
    #: Start the text head from fresh weights (True) or from the base model's head.
    reset_head: bool = True
    #: The text tower's pooling in the tuned model ("" = the base model's). Only poolings without weights of
    #: their own can be switched here: `mean`, `cls`, or `head_mean` (the head maps every token state, then
    #: the mean), so the head's input size stays the frozen tower's hidden size.
    text_pooling: str = ""
    #: Centroids of a token memory fitted to the training captions' token states (`token_memory.py`; needs
    #: `head_mean` pooling); 0 keeps the base model's memory, if any, as it is.
    token_memory: int = 0
    #: How far each token state is blended toward its soft nearest centroids (0..1).
    memory_weight: float = 0.5


#: Text poolings `tune-text` can switch to: none has weights in the tower, so the base model's state fits.
SWITCHABLE_TEXT_POOLINGS = ("mean", "cls", "head_mean")


def paraphrases(clip: Clip, seed: int, sets: int, fine_per_set: int) -> list[tuple[str, list[str]]]:
    """`sets` (global caption, fine captions) of a clip, worded anew from its facts with the wide pool.

    Deterministic for (seed, clip id, set), so a resumed run and its cache see the same sentences."""
    facts = facts_from_record(clip.record)
    out = []
    for k in range(sets):
        rng = random.Random(f"clsp-paraphrase:{seed}:{clip.id}:{k}")
        out.append((global_caption(facts, rng, pool=PARAPHRASE_POOL),
                    fine_captions(facts, rng, n=fine_per_set, pool=PARAPHRASE_POOL)))
    return out


class TextTuner(TrainingRun):
    """The text head of a trained model, retrained against its locked speech side on wider wording."""

    state_file = STATE_FILE
    log_file = LOG_FILE

    def __init__(self, base_model: str, corpus: Path, out: Path, settings: TextTuneSettings,
                 log: Callable[[str], None] = print) -> None:
        super().__init__()
        settings.check()
        if settings.text_pooling and settings.text_pooling not in SWITCHABLE_TEXT_POOLINGS:
            raise ValueError(f"text_pooling must be one of {', '.join(SWITCHABLE_TEXT_POOLINGS)}, "
                             f"got {settings.text_pooling!r}")
        self.out = Path(out)
        self.settings = settings
        self.log_lines = log
        encoder = load_model(base_model, device="cpu")
        # A directory `clsp-search train` wrote keeps its speech frames in its cache: read them, not recompute.
        base_cache = Path(base_model) / "cache"
        self.shared_cache = base_cache if base_cache.is_dir() else None
        if not isinstance(encoder, ClspEncoder) or not hasattr(encoder.model.speech_tower, "frontend_config"):
            raise ValueError(f"{base_model} is not a clsp-search checkpoint with the small speech tower; "
                             "tune-text retrains the text head of a model `clsp-search train` wrote")
        self.base_id = encoder.model_id
        self.model = encoder.model.eval()
        if settings.text_pooling:
            self._switch_text_pooling(settings.text_pooling)
        pooling = self.model.text_tower.pooling
        if settings.token_memory and pooling != "head_mean":  # it blends single token states, which only head_mean keeps
            raise ValueError(f"a token memory needs head_mean text pooling (this model: {pooling!r}); "
                             "pass --text-pooling head_mean")
        if settings.token_memory or pooling != "head_mean":
            self._drop_token_memory()
        self.out.mkdir(parents=True, exist_ok=True)  # only once the model and flags are known to fit
        clips = read_manifest(corpus)
        # Held-out phrasings are never trained on: they measure generalisation to unseen wording.
        self.train_clips = [c for c in clips if c.split in ("train", None) and not c.heldout_phrasing]
        self.val_clips = [c for c in clips if c.split == "val" and not c.heldout_phrasing][: settings.max_val_clips]
        if not self.train_clips:
            raise ValueError(f"{corpus} has no training clips (split 'train', not heldout_phrasing)")
        all_clips = self.train_clips + self.val_clips
        self.n_train = len(self.train_clips)
        cache = self.out / "cache"
        self.speech = self._speech_embeddings(all_clips, cache)
        # Caption ids per clip: [source][set] -> (global id, [fine ids]); source 0 = manifest, 1 = paraphrases.
        # A validation clip keeps only what validation reads (its global and last fine caption, of the manifest
        # and of the first paraphrase set): the text tower and the memory never spend time on the rest.
        captions: dict[str, int] = {}

        def ids(global_text: str, fine_texts: list[str], clip: int) -> tuple[int, list[int]]:
            fine_texts = fine_texts if clip < self.n_train else fine_texts[-1:]
            return captions.setdefault(global_text, len(captions)), [captions.setdefault(f, len(captions)) for f in fine_texts]

        self.own = [ids(c.global_caption, c.fine_captions, i) for i, c in enumerate(all_clips)]
        sets = [paraphrases(c, settings.seed, settings.paraphrase_sets, settings.fine_per_set) for c in all_clips]
        self.para = [[ids(g, f, i) for g, f in (clip_sets if i < self.n_train else clip_sets[:1])]
                     for i, clip_sets in enumerate(sets)]
        dtype = settings.compute_dtype
        self.caption_texts = list(captions)  # by caption id
        self.text_features = cache_text_features(self.model, self.caption_texts, cache, log, dtype=dtype,
                                                 shared_dir=self.shared_cache)
        self.class_captions: dict[str, list[list[int]]] = {}
        if settings.attribute_caption_weight > 0:
            rows = attribute_rows(all_clips)
            vocabulary = label_vocabulary(rows[: self.n_train], ATTRIBUTE_CAPTION_FACTORS)
            if not vocabulary:
                raise ValueError(f"{corpus} has no labelled attributes for the attribute captions "
                                 f"(expected some of {', '.join(ATTRIBUTE_CAPTION_FACTORS)}); pass --attribute-caption-weight 0")
            self.class_captions, phrases = attribute_caption_classes(vocabulary, pools=("train", PARAPHRASE_POOL))
            self.class_caption_features = cache_text_features(self.model, phrases, cache, log, dtype=dtype,
                                                              shared_dir=self.shared_cache)
            self.class_caption_labels = encode_labels(vocabulary, rows)
        if settings.token_memory:
            self._install_token_memory(cache)
        self.head = self.model.text_head
        self.model.requires_grad_(False)
        self.head.requires_grad_(True)
        if settings.reset_head:
            torch.manual_seed(settings.seed)
            for layer in self.head.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.reset_parameters()
        self.scale = self.model.scale().detach()  # the base model's temperature, locked with its speech side
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=settings.learning_rate,
                                           weight_decay=settings.weight_decay)
        self.steps_per_epoch = math.ceil(self.n_train / settings.batch_size)
        self.scheduler = warmup_cosine(self.optimizer, settings.warmup_steps, self.steps_per_epoch * settings.epochs)

    @property
    def total_epochs(self) -> int:
        return self.settings.epochs

    def _switch_text_pooling(self, pooling: str) -> None:
        """Pool the frozen text tower's states the given way from here on (the head is then retrained)."""
        tower = self.model.text_tower
        if tower.pooling not in SWITCHABLE_TEXT_POOLINGS:  # a pooler-trained head read another input
            raise ValueError(f"the base model's text pooling {tower.pooling!r} cannot be switched by tune-text "
                             f"(only among {', '.join(SWITCHABLE_TEXT_POOLINGS)})")
        tower.pooling = pooling
        self._set_text_tower_config("pooling", pooling)

    def _set_text_tower_config(self, key: str, value: Any) -> None:
        """Record a change of the text tower in the model config the checkpoint is written from (None
        removes the key); the tower keeps its own copy."""
        text_tower = {k: v for k, v in self.model.config["text_tower"].items() if k != key}
        if value is not None:
            text_tower[key] = value
        self.model.config = {**self.model.config, "text_tower": text_tower}

    def _drop_token_memory(self) -> None:
        """Forget the base model's token memory: a new one is fitted once raw token states are cached, or
        the tuned model's pooling has no per-token head for it to feed."""
        tower = self.model.text_tower
        tower.memory = None
        tower.config.pop("token_memory", None)
        self._set_text_tower_config("token_memory", None)

    def _install_token_memory(self, cache: Path) -> None:
        """Fit the memory, then blend every cached caption once: training then sees the states search will see."""
        centroids, scale = self._fitted_memory(cache)
        memory = self.model.text_tower.add_memory({"size": self.settings.token_memory, "weight": self.settings.memory_weight})
        memory.set_centroids(centroids, scale)
        self._set_text_tower_config("token_memory", memory.settings)
        started = time.time()
        stores = [self.text_features] + ([self.class_caption_features] if self.class_captions else [])
        with torch.inference_mode():
            for store in stores:
                blended_states = []
                for start in range(0, len(store.states), 2048):  # bounded float32 temporaries
                    group = store.states[start : start + 2048]
                    flat = torch.from_numpy(np.concatenate(group).astype(np.float32))
                    blended = memory(flat).numpy().astype(np.float16)
                    blended_states += np.split(blended, np.cumsum([len(state) for state in group])[:-1])
                store.states = blended_states
        self.log_lines(f"blended the cached token states with the memory in {time.time() - started:.0f}s")

    def _fitted_memory(self, cache: Path, sample_captions: int = 8000) -> tuple[np.ndarray, float]:
        """k-means centroids and scale of token states of (a sample of) the training clips' captions, cached
        for a resumed run. The cache file is named after a digest of the sampled states, so a run whose
        captions differ (other paraphrase settings over a copied cache) fits its own memory."""
        settings = self.settings
        ids = sorted({j for i in range(self.n_train)
                      for source in (self.own[i], *self.para[i]) for j in (source[0], *source[1])})
        rng = np.random.default_rng(settings.seed)
        chosen = rng.choice(ids, size=min(sample_captions, len(ids)), replace=False)
        sample = np.concatenate([self.text_features.states[i] for i in chosen])  # the cache's float16 states
        digest = hashlib.sha256(sample.tobytes()).hexdigest()[:12]
        path = cache / f"token-memory-{self.base_id.replace('@', '-')}-{settings.token_memory}-{settings.seed}-{digest}.npz"
        if path.is_file():
            stored = np.load(path, allow_pickle=False)
            centroids, scale = stored["centroids"], float(stored["scale"])
        else:
            states = sample.astype(np.float32)
            started = time.time()
            centroids, scale = fit_centroids(states, settings.token_memory, seed=settings.seed)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, centroids=centroids, scale=np.float32(scale))
            tmp.replace(path)
            self.log_lines(f"fitted a token memory of {settings.token_memory} centroids to {len(states)} token states "
                           f"in {time.time() - started:.0f}s")
        return centroids, scale

    def _speech_embeddings(self, clips: list[Clip], cache: Path) -> torch.Tensor:
        """The locked speech side's embeddings of whole clips, computed once and cached."""
        path = cache / f"speech-{self.base_id.replace('@', '-')}.npz"
        ids = np.array([c.id for c in clips])
        if path.is_file():
            stored = np.load(path, allow_pickle=False)
            if np.array_equal(stored["ids"], ids):
                return torch.from_numpy(stored["embeddings"])
        tower = self.model.speech_tower
        frames, offsets = cache_speech_frames(clips, tower.frontend_config, cache, self.settings.workers, self.log_lines,
                                              shared_dir=self.shared_cache)
        started, pieces = time.time(), []
        with torch.inference_mode():
            for start in range(0, len(clips), 64):
                batch = [np.asarray(frames[offsets[i] : offsets[i + 1]], dtype=np.float32)
                         for i in range(start, min(start + 64, len(clips)))]
                pieces.append(self.model.encode_speech(**tower.collate(batch)).numpy())
        embeddings = np.concatenate(pieces)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=ids, embeddings=embeddings)
        tmp.replace(path)
        self.log_lines(f"embedded {len(clips)} clips with the locked speech side in {time.time() - started:.0f}s")
        return torch.from_numpy(embeddings)

    def train_epoch(self) -> dict[str, Any]:
        settings = self.settings
        rng = np.random.default_rng([settings.seed, self.epoch])
        torch.manual_seed(settings.seed * 100003 + self.epoch)
        self.head.train()
        order = rng.permutation(self.n_train)
        losses = []
        for step in range(self.steps_per_epoch):
            batch = [int(i) for i in order[step * settings.batch_size : (step + 1) * settings.batch_size]]
            if len(batch) < 2:
                continue
            ids, fine_rows = [], []
            for row, i in enumerate(batch):
                source = self.para[i][int(rng.integers(len(self.para[i])))] if rng.random() < settings.paraphrase_share \
                    else self.own[i]
                if rng.random() < settings.global_share:
                    ids.append(source[0])
                else:
                    ids.append(source[1][int(rng.integers(len(source[1])))])
                    fine_rows.append(row)  # global captions leave attributes unsaid; only fine ones are classified
            # bf16 autocast when compute_dtype asks (the backward pass follows it); losses stay float32
            with cpu_autocast(settings.compute_dtype):
                text = self.head(self.text_features[ids]).float()
            speech = self.speech[batch]
            loss = clip_loss(speech, text, self.scale)
            if self.class_captions:
                with cpu_autocast(settings.compute_dtype):
                    classes = [embeddings.float() for embeddings in self._class_embeddings(rng)]
                labels = self.class_caption_labels[batch]
                auxiliary = 0.5 * (caption_class_loss(speech, classes, labels, self.scale)
                                   + caption_class_loss(text[fine_rows], classes, labels[fine_rows], self.scale))
                loss = loss + settings.attribute_caption_weight * auxiliary
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.head.parameters(), 5.0)
            self.optimizer.step()
            self.scheduler.step()
            losses.append(float(loss.detach()))
        return {"loss": float(np.mean(losses))}

    def _class_embeddings(self, rng: np.random.Generator) -> list[torch.Tensor]:
        """Per attribute, [classes, D]: one of each class's attribute captions drawn at random, through the
        text head being trained. Every attribute's captions go through the head in one batch (rows are
        independent; one call costs far less than a dozen small ones and their backward passes)."""
        draws = [[group[int(rng.integers(len(group)))] for group in groups] for groups in self.class_captions.values()]
        embeddings = self.head(self.class_caption_features[[i for rows in draws for i in rows]])
        return list(embeddings.split([len(rows) for rows in draws]))

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Text->speech R@1 on validation voices: the manifest's global and last fine caption, and the
        same from the first paraphrase set."""
        if not self.val_clips:
            return {}
        self.head.eval()
        indices = range(self.n_train, self.n_train + len(self.val_clips))
        speech = self.speech[list(indices)].numpy()
        result = {}
        for name, source in (("", self.own), ("paraphrase_", [p[0] for p in self.para])):
            for kind, ids in (("global", [source[i][0] for i in indices]), ("fine", [source[i][1][-1] for i in indices])):
                metrics = retrieval_metrics(speech, self.head(self.text_features[ids]).numpy())
                result[f"val_{name}{kind}_t2s_R@1"] = metrics["text_to_speech"]["R@1"]
        return result

    def provenance(self) -> dict[str, Any]:
        return {"text_tuning": {"base_model": self.base_id, "train_clips": self.n_train, "val_clips": len(self.val_clips),
                                "paraphrase_pool": PARAPHRASE_POOL, **asdict(self.settings)}}

    def trained_state(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "base": self.base_id}

    def restore_trained_state(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])

    def check_resumable(self, state: dict[str, Any]) -> None:
        if state["base"] != self.base_id:
            raise ValueError(f"{self.out / self.state_file} was written from {state['base']}; "
                             "use a new --out or the same model and flags")
        super().check_resumable(state)


def tune_text(base_model: str, corpus: str | Path, out: str | Path, settings: TextTuneSettings | None = None,
              resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Retrain (or resume retraining) the text head of `base_model`; returns the exported checkpoint directory."""
    tuner = TextTuner(base_model, Path(corpus), Path(out), settings or TextTuneSettings(), log)
    tuner.start(resume)
    return tuner.run()
