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

import contextlib
import copy
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchengine.corpus.captions import ATTRIBUTE_CAPTION_FACTORS, fine_captions, global_caption
from searchengine.corpus.factors import facts_from_record
from searchengine.model.checkpoint import save_checkpoint
from searchengine.model.data import Clip, read_manifest
from searchengine.model.encoder import ClspEncoder
from searchengine.model.heads import TokenBatch
from searchengine.model.loss import caption_class_loss, clip_loss, encode_labels
from searchengine.model.metrics import retrieval_metrics
from searchengine.model.registry import load_model
from searchengine.model.token_memory import fit_centroids
from searchengine.model.train import (
    RunSettings,
    attribute_caption_classes,
    attribute_rows,
    cache_speech_frames,
    cache_text_features,
    cpu_autocast,
    label_vocabulary,
    load_run_state,
    log_epoch,
    same_settings,
    save_run_state,
    warmup_cosine,
)
from searchengine.model.word_noise import unfamiliar_words, with_word_noise

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
    #: Attribute captions averaged into each class's embedding per step, drawn at random from the class's
    #: captions. Zero-shot classification meets a class as the mean of several wordings (prompt
    #: ensembling), and this trains against such means; 1 = one caption per class, the bundled model's
    #: recipe (4 was measured and not adopted: MODEL_CARD.md).
    class_prompts: int = 1
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
    #: A model whose token memory (centroids, scale and settings) is used as it is instead of fitting one
    #: ("" = fit one when `token_memory` asks). Heads tuned with other seeds through the same memory meet
    #: the same blended states, so they can be combined into one ensemble (`combine_text_heads`).
    memory_from: str = ""
    #: Decay of an exponential moving average of the text head's weights, kept beside the trained head;
    #: validation and export then use the average (0 = off: the trained head itself). An average over the
    #: last ~1/(1-decay) steps sits in a flatter region than any one step's weights, which is what
    #: unfamiliar wording needs; the live head is still validated and logged (`live_*`).
    ema_decay: float = 0.0
    #: Share of a training caption's token states left out of its mean at each step (head_mean pooling
    #: only; at least one token always stays). The head then cannot lean on any one word, as an unseen
    #: synonym in a search box takes one word away; 0 = off.
    token_dropout: float = 0.0
    #: MiniLM's top encoder layers trained along with the head (0 = the head alone). The frozen layers'
    #: output is cached instead of the last layer's, so an epoch costs about twice as much; the tuned
    #: layers are stored in the checkpoint (7 MB per MiniLM layer) and re-read every word in context
    #: for the voice space, which a head over frozen states cannot (measured in the model card).
    text_layers: int = 0
    #: Peak learning rate of the tuned text layers (the head keeps `learning_rate`): pretrained weights
    #: move far less than a fresh head before they forget what they knew.
    text_layer_learning_rate: float = 3e-5
    #: Share of words replaced by unfamiliar words (tokenizer vocabulary outside every phrasing pool;
    #: `word_noise.py`) in every second paraphrase set (the 2nd, 4th, ...), the clip staying the target.
    #: Such sets are left out of the token memory's sample, which holds real caption words only; 0 = off.
    word_noise: float = 0.0


#: Text poolings `tune-text` can switch to: none has weights in the tower, so the base model's state fits.
SWITCHABLE_TEXT_POOLINGS = ("mean", "cls", "head_mean")


def paraphrases(clip: Clip, seed: int, sets: int, fine_per_set: int, word_noise: float = 0.0,
                substitutes: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """`sets` (global caption, fine captions) of a clip, worded anew from its facts with the wide pool;
    with `word_noise`, every second set has that share of its words replaced by `substitutes`.

    Deterministic for (seed, clip id, set), so a resumed run and its cache see the same sentences."""
    facts = facts_from_record(clip.record)
    out = []
    for k in range(sets):
        rng = random.Random(f"clsp-paraphrase:{seed}:{clip.id}:{k}")
        out.append((global_caption(facts, rng, pool=PARAPHRASE_POOL),
                    fine_captions(facts, rng, n=fine_per_set, pool=PARAPHRASE_POOL)))
    return with_noised_sets(out, clip, seed, word_noise, substitutes or []) if word_noise else out


def with_noised_sets(sets: list[tuple[str, list[str]]], clip: Clip, seed: int, share: float,
                     substitutes: list[str]) -> list[tuple[str, list[str]]]:
    """A clip's paraphrase sets with word noise in every second one (`is_noised_set`); deterministic for
    (seed, clip id, set), and independent of how the clean sets were written."""
    out = []
    for k, (global_text, fine_texts) in enumerate(sets):
        if is_noised_set(k):
            noise = random.Random(f"clsp-word-noise:{seed}:{clip.id}:{k}")
            global_text = with_word_noise(global_text, share, substitutes, noise)
            fine_texts = [with_word_noise(text, share, substitutes, noise) for text in fine_texts]
        out.append((global_text, fine_texts))
    return out


def is_noised_set(k: int) -> bool:
    """Whether paraphrase set k (from 0) carries word noise when `word_noise` is on: every second one."""
    return k % 2 == 1


class TextTuner:
    def __init__(self, base_model: str, corpus: Path, out: Path, settings: TextTuneSettings,
                 log: Callable[[str], None] = print) -> None:
        if settings.class_prompts < 1:
            raise ValueError(f"class_prompts must be at least 1, got {settings.class_prompts}")
        for name in ("ema_decay", "token_dropout"):
            if not 0.0 <= getattr(settings, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(settings, name)}")
        if settings.token_memory and settings.memory_from:
            raise ValueError("pass either --token-memory (fit a memory) or --memory-from (use a model's), not both")
        if not 0.0 <= settings.word_noise < 1.0:
            raise ValueError(f"word_noise must be in [0, 1), got {settings.word_noise}")
        if settings.word_noise and settings.paraphrase_sets < 2:
            raise ValueError("--word-noise acts on every second paraphrase set, so it needs --paraphrase-sets 2 or more "
                             f"(got {settings.paraphrase_sets})")
        if settings.text_layers < 0:
            raise ValueError(f"text_layers must be 0 or more, got {settings.text_layers}")
        if settings.text_layers and (settings.token_memory or settings.ema_decay):
            # A memory is fitted to cached last-layer states, and the weight average covers the head alone.
            raise ValueError("--text-layers trains the tower's top layers, so it cannot fit a token memory from the "
                             "cache or average only the head's weights: take a memory with --memory-from MODEL "
                             "and leave --ema-decay at 0")
        settings.check()
        if settings.text_pooling and settings.text_pooling not in SWITCHABLE_TEXT_POOLINGS:
            raise ValueError(f"text_pooling must be one of {', '.join(SWITCHABLE_TEXT_POOLINGS)}, "
                             f"got {settings.text_pooling!r}")
        self.out = Path(out)
        self.settings = settings
        self.memory_source = ""  # model id of a borrowed token memory
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
        self.text_layers = self._tune_text_layers(settings.text_layers)
        pooling = self.model.text_tower.pooling
        for option, used in (("a token memory", settings.token_memory or settings.memory_from),
                             ("token dropout", settings.token_dropout)):
            if used and pooling != "head_mean":  # both act on single token states, which only head_mean keeps
                raise ValueError(f"{option} needs head_mean text pooling (this model: {pooling!r}); "
                                 "pass --text-pooling head_mean")
        if settings.token_memory or settings.memory_from or pooling != "head_mean":
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
        if settings.word_noise:  # never a word any caption of the corpus uses, held-out ones included
            written = [text for c in clips for text in (c.global_caption, *c.fine_captions)]
            written += [text for clip_sets in sets for g, f in clip_sets for text in (g, *f)]
            substitutes = unfamiliar_words(self.model.text_tower.tokenizer.get_vocab(), written)
            sets = [with_noised_sets(clip_sets, c, settings.seed, settings.word_noise, substitutes)
                    for c, clip_sets in zip(all_clips, sets, strict=True)]
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
        if settings.token_memory or settings.memory_from:
            self._install_token_memory(cache)
        self.head = self.model.text_head
        # Everything trained: the head, and the tower's tuned top layers when asked (in place, so the
        # exported checkpoint carries them).
        self.trained = torch.nn.ModuleList([self.head, *self.text_layers])
        self.model.requires_grad_(False)
        self.trained.requires_grad_(True)
        if settings.reset_head:
            torch.manual_seed(settings.seed)
            for layer in self.head.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.reset_parameters()
        # The weight average validation and export use (the head itself when ema_decay is 0).
        self.average = copy.deepcopy(self.head).requires_grad_(False) if settings.ema_decay else None
        self.scale = self.model.scale().detach()  # the base model's temperature, locked with its speech side
        groups = [{"params": list(self.head.parameters()), "lr": settings.learning_rate}]
        if self.text_layers:
            groups.append({"params": [p for layer in self.text_layers for p in layer.parameters()],
                           "lr": settings.text_layer_learning_rate})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
        self.steps_per_epoch = math.ceil(self.n_train / settings.batch_size)
        self.scheduler = warmup_cosine(self.optimizer, settings.warmup_steps, self.steps_per_epoch * settings.epochs)
        self.epoch = 0
        self.best_score = -1.0
        self.history: list[dict[str, Any]] = []

    def _switch_text_pooling(self, pooling: str) -> None:
        """Pool the frozen text tower's states the given way from here on (the head is then retrained)."""
        tower = self.model.text_tower
        if tower.pooling not in SWITCHABLE_TEXT_POOLINGS:  # attention poolings' weights would be dropped
            raise ValueError(f"the base model's text pooling {tower.pooling!r} cannot be switched by tune-text "
                             f"(only among {', '.join(SWITCHABLE_TEXT_POOLINGS)})")
        tower.pooling = pooling
        self._set_text_tower_config("pooling", pooling)

    def _tune_text_layers(self, count: int) -> list[torch.nn.Module]:
        """Mark the text tower's top `count` layers as tuned (cached states are then taken below them) and
        return them; none when `count` is 0. A base model's own tuned layers stay stored either way."""
        tower = self.model.text_tower
        if not count:
            return []
        layers = len(tower.encoder_layers)
        if tower.pooling == "pooler" or count > layers:  # the pooler reads the model's own output
            raise ValueError(f"--text-layers needs a text tower with {count} or more layers and pooling of its "
                             f"token states (this one: {layers} layers, pooling {tower.pooling!r})")
        if count < tower.tuned_layers:
            raise ValueError(f"the base model's top {tower.tuned_layers} text layers are tuned already; "
                             f"pass --text-layers {tower.tuned_layers} or more so they stay stored")
        tower.tuned_layers = count
        self._set_text_tower_config("tuned_layers", count)
        return list(tower.encoder_layers[layers - count :])

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
        """Fit the memory (or take `memory_from`'s), then blend every cached caption once: training then sees
        the states search will see."""
        if self.settings.memory_from:
            centroids, scale, memory_settings, self.memory_source = self._borrowed_memory(self.settings.memory_from)
        else:
            centroids, scale = self._fitted_memory(cache)
            memory_settings = {"size": self.settings.token_memory, "weight": self.settings.memory_weight}
        tower = self.model.text_tower
        memory = tower.add_memory(memory_settings)
        memory.set_centroids(centroids, scale)
        self._set_text_tower_config("token_memory", memory.settings)
        if tower.tuned_layers:  # the memory meets the tuned layers' output, step by step (`upper_states`)
            return
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
        clean = [[source for k, source in enumerate(self.para[i]) if not (settings.word_noise and is_noised_set(k))]
                 for i in range(self.n_train)]
        ids = sorted({j for i in range(self.n_train)
                      for source in (self.own[i], *clean[i]) for j in (source[0], *source[1])})
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

    def _borrowed_memory(self, name: str) -> tuple[np.ndarray, float, dict[str, Any], str]:
        """Centroids, scale, settings and model id of another model's token memory, which must read the same
        text tower (the id is recorded: a name such as clsp-mini may later point at other weights)."""
        source = load_model(name, device="cpu")
        memory = getattr(source.model.text_tower, "memory", None) if isinstance(source, ClspEncoder) else None
        if memory is None:
            raise ValueError(f"{name} has no token memory to use; fit one with --token-memory N instead")
        ours, theirs = ({k: v for k, v in config.items() if k not in ("token_memory", "tuned_layers")}
                        for config in (self.model.config["text_tower"], source.model.config["text_tower"]))
        if ours != theirs:
            raise ValueError(f"{name}'s text tower {theirs} is not this model's {ours}: its memory was fitted to other states")
        return memory.centroids.numpy().copy(), float(memory.scale), dict(memory.settings), source.model_id

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

    def _train_epoch(self) -> dict[str, float]:
        settings = self.settings
        rng = np.random.default_rng([settings.seed, self.epoch])
        torch.manual_seed(settings.seed * 100003 + self.epoch)
        self.trained.train()
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
                text = self.head(self._drop_tokens(self.text_features[ids])).float()
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
            torch.nn.utils.clip_grad_norm_(self.trained.parameters(), 5.0)
            self.optimizer.step()
            self.scheduler.step()
            self._update_average()
            losses.append(float(loss.detach()))
        return {"loss": float(np.mean(losses))}

    def _drop_tokens(self, features: torch.Tensor | TokenBatch) -> torch.Tensor | TokenBatch:
        """Leave a random `token_dropout` share of each caption's real tokens out of its mean; a caption
        that would lose all of them keeps all."""
        share = self.settings.token_dropout
        if not share or not isinstance(features, TokenBatch):
            return features
        mask = features.mask.bool()
        kept = mask & (torch.rand(mask.shape) >= share)
        emptied = ~kept.any(dim=1)
        kept[emptied] = mask[emptied]
        return TokenBatch(features.hidden, kept)

    @property
    def steps(self) -> int:
        """Optimiser steps taken so far: the scheduler counts them, and a resumed run restores its count."""
        return self.scheduler.last_epoch

    def _update_average(self) -> None:
        """One step of the weight average after an optimiser (and scheduler) step, its decay warmed up as
        (1 + n) / (10 + n) over the first n steps so the fresh head's early weights do not linger in it."""
        if self.average is None:
            return
        decay = min(self.settings.ema_decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for averaged, live in zip(self.average.parameters(), self.head.parameters(), strict=True):
                averaged.lerp_(live, 1.0 - decay)

    @contextlib.contextmanager
    def _exported_head(self) -> Iterator[None]:
        """The model's text head holds the weight average inside the block (for validation and export), its
        own trained weights again after it."""
        if self.average is None:
            yield
            return
        live = copy.deepcopy(self.head.state_dict())
        self.head.load_state_dict(self.average.state_dict())
        try:
            yield
        finally:
            self.head.load_state_dict(live)

    def _class_embeddings(self, rng: np.random.Generator) -> list[torch.Tensor]:
        """Per attribute, [classes, D]: each class as the normalised mean of `class_prompts` of its attribute
        captions drawn at random (with replacement), through the text head being trained."""
        k = self.settings.class_prompts
        attributes = list(self.class_captions.values())
        if k == 1:  # the recipe's own draws: no second normalisation of unit vectors
            draws = [[group[int(rng.integers(len(group)))] for group in groups] for groups in attributes]
        else:
            draws = [[group[int(j)] for group in groups for j in rng.integers(len(group), size=k)] for groups in attributes]
        # Every attribute's captions through the head in one batch (rows are independent; one call costs far
        # less than a dozen small ones and their backward passes).
        embeddings = self.head(self.class_caption_features[[i for rows in draws for i in rows]]).split([len(rows) for rows in draws])
        if k == 1:
            return list(embeddings)
        return [torch.nn.functional.normalize(e.view(len(groups), k, -1).mean(dim=1), dim=-1)
                for e, groups in zip(embeddings, attributes, strict=True)]

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Text->speech R@1 on validation voices: the manifest's global and last fine caption, and the
        same from the first paraphrase set."""
        if not self.val_clips:
            return {}
        self.trained.eval()
        indices = range(self.n_train, self.n_train + len(self.val_clips))
        speech = self.speech[list(indices)].numpy()
        result = {}
        for name, source in (("", self.own), ("paraphrase_", [p[0] for p in self.para])):
            for kind, ids in (("global", [source[i][0] for i in indices]), ("fine", [source[i][1][-1] for i in indices])):
                metrics = retrieval_metrics(speech, self.head(self.text_features[ids]).numpy())
                result[f"val_{name}{kind}_t2s_R@1"] = metrics["text_to_speech"]["R@1"]
        return result

    def save_state(self) -> None:
        state = {"head": self.head.state_dict(), "text_layers": [layer.state_dict() for layer in self.text_layers],
                 "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "best_score": self.best_score,
                 "history": self.history, "settings": asdict(self.settings), "base": self.base_id,
                 "average": None if self.average is None else self.average.state_dict()}
        save_run_state(self.out / STATE_FILE, state)

    def load_state(self) -> bool:
        path = self.out / STATE_FILE
        state = load_run_state(path)
        if state is None:
            return False
        if not same_settings(state["settings"], self.settings) or state["base"] != self.base_id:
            raise ValueError(f"{path} was written from {state['base']} with settings {state['settings']}; "
                             "use a new --out or the same model and flags")
        self.head.load_state_dict(state["head"])
        for layer, saved in zip(self.text_layers, state["text_layers"], strict=True):
            layer.load_state_dict(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best_score, self.history = state["epoch"], state["best_score"], state["history"]
        if self.average is not None:
            self.average.load_state_dict(state["average"])
        return True

    def run(self, stop_after_epoch: int | None = None) -> Path:
        """Train to the end, or only up to `stop_after_epoch` (a later `--resume` continues exactly)."""
        tuning = {"base_model": self.base_id, "train_clips": self.n_train, "val_clips": len(self.val_clips),
                  "paraphrase_pool": PARAPHRASE_POOL, **asdict(self.settings)}
        if self.memory_source:
            tuning["memory_model"] = self.memory_source
        last = self.settings.epochs if stop_after_epoch is None else min(stop_after_epoch, self.settings.epochs)
        while self.epoch < last:
            started = time.time()
            epoch = self.epoch + 1
            record = {"epoch": epoch, **self._train_epoch()}
            if not self.settings.scores_epoch(epoch, self.settings.epochs):  # trained and logged only
                record["seconds"] = round(time.time() - started, 1)
            else:
                if self.average is not None:  # the trained head's own figures, beside the average's
                    record.update({f"live_{k}": v for k, v in self.validate().items()})
                with self._exported_head():
                    record.update(self.validate())
                    record["seconds"] = round(time.time() - started, 1)
                    score = float(np.mean([v for k, v in record.items() if k.startswith("val_")] or [0.0]))
                    if score >= self.best_score:
                        self.best_score = score
                        save_checkpoint(self.model, self.out, extra={"text_tuning": {**tuning, "epoch": epoch}})
                        record["exported"] = True
            self.epoch = epoch
            self.history.append(record)
            log_epoch(self.out / LOG_FILE, record, self.log_lines)
            self.save_state()
        return self.out


def tune_text(base_model: str, corpus: str | Path, out: str | Path, settings: TextTuneSettings | None = None,
              resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Retrain (or resume retraining) the text head of `base_model`; returns the exported checkpoint directory."""
    tuner = TextTuner(base_model, Path(corpus), Path(out), settings or TextTuneSettings(), log)
    if resume and tuner.load_state():
        log(f"resumed after epoch {tuner.epoch} of {tuner.settings.epochs}")
    elif (Path(out) / STATE_FILE).is_file():
        raise FileExistsError(f"{out} holds a tuning run; pass --resume to continue it or choose a new --out")
    return tuner.run()
