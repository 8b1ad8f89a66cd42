"""Training CLSP on a style corpus: stage 1 (symmetric InfoNCE) then stage 2 (multi-positive).

The recipe is built for a small CPU: everything frozen is computed once and cached under
`OUT/cache/` (speech frames of every clip; pooled text-tower features of every distinct caption when
the text tower is frozen, or its token states when a learned attention pooling sits on top), so an
epoch only runs the small speech tower, the pooling and the heads. Every epoch ends with a validation
retrieval pass (held-out voices) and a resumable checkpoint (`OUT/train_state.pt`); the best epoch
by validation R@1 is exported as a normal checkpoint directory in OUT. Runs are deterministic for a seed, also across `--resume`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from searchengine.corpus.captions import ATTRIBUTE_CAPTION_FACTORS, attribute_captions
from searchengine.model.checkpoint import save_checkpoint
from searchengine.model.clsp import CLSP
from searchengine.model.config import get_model_config
from searchengine.model.data import Clip, read_manifest
from searchengine.model.frontend import FrontendConfig, LogMelPitchFrontend
from searchengine.model.loss import (
    AttributeClassifiers,
    PaceRegressor,
    caption_class_loss,
    clip_loss,
    encode_labels,
    multi_positive_loss,
    two_fine_share,
)
from searchengine.model.metrics import retrieval_metrics
from searchengine.model.towers import lengths_to_mask, pad_rows

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"
#: Precisions a run may compute in (`RunSettings.compute_dtype`), and the frozen text tower's cache pass.
TEXT_FEATURE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class RunSettings:
    """What every training run here shares: seed, optimiser schedule, feature workers, validation size."""

    seed: int = 0
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    workers: int = 2
    max_val_clips: int = 600
    #: Score validation (and export the best epoch so far) every this many epochs, and always at the
    #: schedule's last one. Training never depends on validation, so only the exported epoch can differ
    #: (the best of the epochs scored); validation is a tenth to a fifth of an epoch on the bundled corpus.
    validate_every: int = 1
    #: Precision of the run's big computations, "float32" or "bfloat16": the frozen text tower's pass over
    #: every caption while its features are cached (`cache_text_features`), and the trained parts' forward
    #: and backward passes (autocast: weights, optimiser state and losses stay float32). On a CPU with AMX
    #: or AVX512-BF16 they run up to twice as fast (benchmarks/bench_training_precision.py). Validation and
    #: export stay float32, so the exported epoch is chosen on what search computes.
    compute_dtype: str = "float32"

    def check(self) -> None:
        """Refuse settings no run can use, before any work is done."""
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be at least 1, got {self.validate_every}")
        if self.compute_dtype not in TEXT_FEATURE_DTYPES:
            hint = " ('auto' is resolved by precision.resolve_compute_dtype, as the CLI does)" \
                if self.compute_dtype == "auto" else ""
            raise ValueError(f"compute_dtype must be one of {', '.join(TEXT_FEATURE_DTYPES)}, "
                             f"got {self.compute_dtype!r}{hint}")

    def scores_epoch(self, epoch: int, last: int) -> bool:
        """Whether 1-based `epoch` of a schedule ending at `last` is scored on validation and may be
        exported: every `validate_every`th epoch, and always the last one."""
        return epoch % self.validate_every == 0 or epoch == last


def same_settings(saved: dict[str, Any], settings: RunSettings) -> bool:
    """Whether a saved run's settings are these. A setting added after the run was saved is read at its
    default (every new setting defaults to the behaviour before it existed), so old runs still resume."""
    return {**asdict(type(settings)()), **saved} == asdict(settings)


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


# ------------------------------------------------------------------------------------- feature cache


def _frame_file(cache_dir: Path, path: str, frontend: FrontendConfig) -> Path:
    key = hashlib.sha256(json.dumps([asdict(frontend), str(Path(path).resolve())]).encode()).hexdigest()[:20]
    return cache_dir / "frames" / f"{key}.npy"


def _featurize(args: tuple[str, dict[str, Any], str]) -> None:
    path, frontend, target = args
    import soundfile

    from searchengine.model.audio import prepare_waveforms

    audio, rate = soundfile.read(path, dtype="float32", always_2d=False)
    frames = LogMelPitchFrontend(FrontendConfig(**frontend))(prepare_waveforms([audio], rate)[0])
    tmp = Path(target).with_suffix(".tmp.npy")
    np.save(tmp, frames.astype(np.float16))
    tmp.replace(target)


def cache_speech_frames(clips: list[Clip], frontend: FrontendConfig, cache_dir: Path, workers: int,
                        log: Callable[[str], None], shared_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames of every clip, concatenated (float16) with offsets.

    Each clip's frames are cached in their own file (keyed by path and frontend settings), so the
    cache fills incrementally: an interrupted run, or a precompute started while the corpus was still
    being rendered, is never redone. `shared_dir` is another run's cache (`tune-text` passes its base
    model's), read and never written: frames it holds under the same key are not computed again.
    """
    (cache_dir / "frames").mkdir(parents=True, exist_ok=True)
    targets = [_frame_file(cache_dir, str(c.path), frontend) for c in clips]
    if shared_dir is not None:
        for i, clip in enumerate(clips):
            elsewhere = _frame_file(shared_dir, str(clip.path), frontend)
            if not targets[i].is_file() and elsewhere.is_file():
                targets[i] = elsewhere
    todo = [(str(c.path), asdict(frontend), str(t)) for c, t in zip(clips, targets, strict=True) if not t.is_file()]
    if todo:
        started = time.time()
        progress = tqdm(total=len(todo), unit="clip", desc="speech frames", disable=None)
        if workers <= 1:
            for job in todo:
                _featurize(job)
                progress.update()
        else:
            with get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_featurize, todo, chunksize=16):
                    progress.update()
        progress.close()
        log(f"computed speech frames of {len(todo)} clips in {time.time() - started:.0f}s")
    return concatenate_rows([np.load(t) for t in targets])


def concatenate_rows(pieces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length [T_i, D] arrays -> one [sum T_i, D] array and offsets [N + 1]: piece i is
    rows offsets[i]:offsets[i + 1]. One array stores and loads far faster than thousands."""
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([p.shape[0] for p in pieces])
    return np.concatenate(pieces, axis=0), offsets


class TokenStates:
    """Frozen token states of captions (last-layer, or those entering the tower's tuned top layers), pooled
    on demand through the tower's trainable parts.

    Indexing with caption ids returns pooled [N, D] features like the cached pooled tensor does, so the
    trainer treats both alike; the gradient reaches the tuned layers and the pooling weights.
    """

    def __init__(self, states: list[np.ndarray], pool: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self.states = states
        self.pool = pool

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, ids: list[int]) -> torch.Tensor:
        hidden, lengths = pad_rows([self.states[i] for i in ids])
        return self.pool(hidden, lengths_to_mask(lengths, hidden.shape[1]))


#: How often a growing text-feature cache is written while captions are encoded. The whole file is rewritten
#: each time (new file, then rename), so a fixed count of batches would make a large cache cost quadratic time.
CACHE_SAVE_SECONDS = 300.0


def encoding_order(captions: Iterable[str]) -> list[str]:
    """Distinct captions in the order their features are computed: by length, so a batch pads little,
    then by text. A batch's padded length and members change a caption's features in the last bits (and
    in bf16 beyond float16's), so the order must not depend on the set's iteration order, which
    changes with Python's hash seed from run to run: a run is then deterministic for its seed."""
    return sorted(set(captions), key=lambda caption: (len(caption), caption))


def cpu_autocast(dtype: str) -> torch.autocast:
    """CPU autocast to `dtype` (a TEXT_FEATURE_DTYPES name); a no-op for float32."""
    return torch.autocast("cpu", dtype=TEXT_FEATURE_DTYPES[dtype], enabled=dtype != "float32")


def cache_text_features(model: CLSP, captions: list[str], cache_dir: Path, log: Callable[[str], None],
                        dtype: str = "float32", shared_dir: Path | None = None) -> torch.Tensor | TokenStates:
    """Frozen-text-tower features of the given captions, computing only unseen ones.

    Pooled [U, D] features when the tower's pooling has no weights; token states (float16, `TokenStates`)
    when trained weights act per token (attention pooling, a per-token head, tuned top layers: the states
    cached are then those entering the first tuned layer). `dtype="bfloat16"` runs the tower under bf16
    autocast: about 1.5x faster on CPUs with AMX or AVX512-BF16, states within about 0.6% (relative) of
    float32, which the float16 cache and the trained head absorb; the cache key records the precision.

    The tower's raw last-layer states do not depend on how they are pooled, so they are kept once more
    in a store of their own (`token_state_store`): a pooled pass (`clsp-search train`) writes the states
    it pools beside its features, and a per-token pass (`tune-text`) reads the states of captions it
    shares with another run's store in `shared_dir` (its base model's cache) instead of running the tower
    on them again. The stored states were computed in other batches, so they can differ from a fresh pass
    in the last bits (bf16) or not at all (float32 agrees to float16 rounding).
    """
    if dtype not in TEXT_FEATURE_DTYPES:
        raise ValueError(f"text feature dtype must be one of {', '.join(TEXT_FEATURE_DTYPES)}, got {dtype!r}")
    tower = model.text_tower
    tokens = tower.pools_tokens
    digest = hashlib.sha256(json.dumps(model.config["text_tower"], sort_keys=True).encode())
    if dtype != "float32":  # float32 caches keep the key they always had
        digest.update(dtype.encode())
    memory = getattr(tower, "memory", None)
    if memory is not None:  # blended states depend on the fitted centroids, not only on the settings
        digest.update(memory.centroids.detach().cpu().numpy().tobytes())
    key = digest.hexdigest()[:16]
    path = cache_dir / f"text-{key}.npz"
    known = _load_text_cache(path)
    missing = encoding_order(c for c in captions if c not in known)
    store = token_state_store(model, dtype)
    if missing and tokens and store is not None and shared_dir is not None:
        shared = _load_text_cache(Path(shared_dir) / store)
        reused = [c for c in missing if c in shared]
        if reused:
            known.update((c, shared[c]) for c in reused)
            missing = [c for c in missing if c not in shared]
            log(f"read token states of {len(reused)} captions from {Path(shared_dir) / store}")
        del shared
    # A pooled pass keeps the raw states it pools for a later per-token run (see above).
    states_path = cache_dir / store if not tokens and store is not None else None
    if missing:
        started = time.time()
        tower.eval()
        states = _load_text_cache(states_path) if states_path is not None else {}
        progress = tqdm(total=len(missing), unit="caption", desc="text features", disable=None)
        saved = started
        with torch.inference_mode(), cpu_autocast(dtype):
            for start in range(0, len(missing), 128):
                batch = missing[start : start + 128]
                prepared = tower.prepare(batch)
                lengths = prepared["attention_mask"].sum(dim=1).tolist()
                if tokens:
                    hidden = tower.cached_states(**prepared).float().numpy().astype(np.float16)
                    vectors = [hidden[row, :length] for row, length in enumerate(lengths)]
                elif states_path is not None:  # the forward pass of `tower(...)`, keeping its states on the way
                    hidden = tower.token_states(**prepared)
                    vectors = list(tower.pool_tokens(hidden, prepared["attention_mask"].bool()).float().numpy())
                    raw = hidden.float().numpy().astype(np.float16)
                    states.update((c, raw[row, :length]) for row, (c, length) in enumerate(zip(batch, lengths, strict=True)))
                else:
                    vectors = list(tower(**prepared).float().numpy())
                known.update(zip(batch, vectors, strict=True))
                progress.update(len(batch))
                if time.time() - saved > CACHE_SAVE_SECONDS:  # a killed run resumes from here
                    _save_text_caches(path, known, states_path, states)
                    saved = time.time()
        progress.close()
        _save_text_caches(path, known, states_path, states)
        log(f"computed text features of {len(missing)} captions in {time.time() - started:.0f}s")
    if tokens:
        return TokenStates([known[c] for c in captions], tower.pool_cached)
    return torch.from_numpy(np.stack([known[c] for c in captions]).astype(np.float32))


def token_state_store(model: CLSP, dtype: str) -> str | None:
    """File name (in a run's cache) of the frozen text tower's raw last-layer token states, keyed by what
    makes them: the tower's settings but its pooling, and the precision. None when the tower's states are
    not raw last-layer ones (a token memory blends them, tuned or trainable layers change them) or its
    pooling reads the model's pooler instead."""
    tower = model.text_tower
    config = dict(model.config["text_tower"])
    if (getattr(tower, "memory", None) is not None or getattr(tower, "tuned_layers", 0) or config.get("trainable")
            or getattr(tower, "pooling", "pooler") == "pooler" or not hasattr(tower, "token_states")):
        return None
    for setting in ("pooling", "token_memory", "tuned_layers"):  # inactive here, or no part of the states
        config.pop(setting, None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode() + dtype.encode()).hexdigest()[:16]
    return f"token-states-{digest}.npz"


def _save_text_caches(path: Path, known: dict[str, np.ndarray], states_path: Path | None,
                      states: dict[str, np.ndarray]) -> None:
    """The features, and the raw states kept beside them (written first: a store never lags the features)."""
    if states_path is not None and states:
        _save_text_cache(states_path, states)
    _save_text_cache(path, known)


def _load_text_cache(path: Path) -> dict[str, np.ndarray]:
    """caption -> pooled vector [D] or token states [T, D], as `_save_text_cache` wrote them."""
    if not path.is_file():
        return {}
    stored = np.load(path, allow_pickle=False)
    captions = stored["captions"].tolist()
    if "offsets" not in stored:
        return dict(zip(captions, stored["features"], strict=True))
    states, offsets = stored["features"], stored["offsets"]
    return {c: states[offsets[i] : offsets[i + 1]] for i, c in enumerate(captions)}


def _save_text_cache(path: Path, known: dict[str, np.ndarray]) -> None:
    """Write the cache to a new file, then rename it over the old one (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    values = list(known.values())
    if values and values[0].ndim == 2:  # token states: concatenated, with row offsets per caption
        features, offsets = concatenate_rows(values)
        np.savez(tmp, captions=np.array(list(known)), features=features, offsets=offsets)
    else:
        np.savez(tmp, captions=np.array(list(known)), features=np.stack(values))
    tmp.replace(path)


# -------------------------------------------------------------------------------------------- trainer


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then cosine decay to zero at `total_steps`."""

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def save_run_state(path: Path, state: dict[str, Any]) -> None:
    """Write a run's resumable state to a new file, then rename it over the old one: a run killed
    while saving leaves the previous epoch's state intact."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_run_state(path: Path) -> dict[str, Any] | None:
    """The state `save_run_state` wrote, or None when the run has none yet."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def log_epoch(path: Path, record: dict[str, Any], log: Callable[[str], None]) -> None:
    """Append an epoch's record to the run's jsonl log and show it as one line."""
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    log("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))



class Trainer:
    def __init__(self, corpus: Path, out: Path, settings: TrainSettings, log: Callable[[str], None] = print) -> None:
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
        # Everything trainable: the speech tower, both heads, the temperature and, with attention
        # pooling, the text pooling weights (the frozen text transformer has requires_grad off).
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
        self.total_epochs = settings.stage1_epochs + settings.stage2_epochs
        self.scheduler = warmup_cosine(self.optimizer, settings.warmup_steps, self.steps_per_epoch * self.total_epochs)
        self.epoch = 0
        self.best_score = -1.0
        self.history: list[dict[str, Any]] = []

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
    def _train_epoch(self) -> dict[str, float]:
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
    def save_state(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "attributes": self.attributes.state_dict() if self.attributes is not None else None,
            "pace": self.pace.state_dict() if self.pace is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "history": self.history,
            "settings": asdict(self.settings),
        }
        save_run_state(self.out / STATE_FILE, state)

    def load_state(self) -> bool:
        path = self.out / STATE_FILE
        state = load_run_state(path)
        if state is None:
            return False
        if not same_settings(state["settings"], self.settings):
            raise ValueError(f"{path} was written with other settings {state['settings']}; use a new --out or the same flags")
        self.model.load_state_dict(state["model"])
        if self.attributes is not None:
            self.attributes.load_state_dict(state["attributes"])
        if self.pace is not None:
            self.pace.load_state_dict(state["pace"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best_score, self.history = state["epoch"], state["best_score"], state["history"]
        return True

    def _log(self, record: dict[str, Any]) -> None:
        log_epoch(self.out / LOG_FILE, record, self.log_lines)

    def run(self, stop_after_epoch: int | None = None) -> Path:
        """Train to the end, or only up to `stop_after_epoch` (a later `--resume` continues exactly)."""
        training = {"corpus_clips_train": self.n_train, "corpus_clips_val": len(self.val_clips), **asdict(self.settings)}
        last = self.total_epochs if stop_after_epoch is None else min(stop_after_epoch, self.total_epochs)
        while self.epoch < last:
            started = time.time()
            record = {"epoch": self.epoch + 1, **self._train_epoch()}
            scored = self.settings.scores_epoch(self.epoch + 1, self.total_epochs)
            if scored:  # training never depends on validation: only the choice of exported epoch can
                record.update(self.validate())
            record["seconds"] = round(time.time() - started, 1)
            score = np.mean([v for k, v in record.items() if k.endswith("t2s_R@1")] or [0.0])
            self.epoch += 1
            if scored and score >= self.best_score:
                self.best_score = float(score)
                save_checkpoint(self.model, self.out, extra={"training": {**training, "epoch": self.epoch}})
                record["exported"] = True
            self.history.append(record)
            self._log(record)
            self.save_state()
        return self.out


def train(corpus: str | Path, out: str | Path, settings: TrainSettings | None = None, resume: bool = False,
          log: Callable[[str], None] = print) -> Path:
    """Train (or resume) and return the exported checkpoint directory."""
    trainer = Trainer(Path(corpus), Path(out), settings or TrainSettings(), log)
    if resume and trainer.load_state():
        log(f"resumed after epoch {trainer.epoch} of {trainer.total_epochs}")
    elif (Path(out) / STATE_FILE).is_file():
        raise FileExistsError(f"{out} holds a training run; pass --resume to continue it or choose a new --out")
    return trainer.run()
