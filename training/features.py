"""What training computes once and caches under `OUT/cache/`: speech frames and frozen text features.

The recipe is built for a small CPU: everything frozen is computed once (speech frames of every clip;
pooled text-tower features of every distinct caption, or its token states when the projection head
maps every token), so an epoch only runs the small speech tower and the heads. Every cache file is
written new and renamed, and fills incrementally, so a killed run resumes without recomputing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from searchengine.model.clsp import CLSP
from searchengine.model.data import Clip
from searchengine.model.frontend import FrontendConfig, LogMelPitchFrontend
from searchengine.model.towers import lengths_to_mask, pad_rows
from training.loop import COMPUTE_DTYPES, cpu_autocast


def _frame_file(cache_dir: Path, clip: Clip, frontend: FrontendConfig) -> Path:
    """The cache file of a clip's frames, keyed by its audio (file, and segment when it has one) and the
    frontend settings. A whole file keeps the key it always had, so older caches are still read."""
    audio: list[Any] = [str(Path(clip.path).resolve())]
    if clip.start is not None or clip.end is not None:
        audio.append([clip.start, clip.end])
    key = hashlib.sha256(json.dumps([asdict(frontend), *audio]).encode()).hexdigest()[:20]
    return cache_dir / "frames" / f"{key}.npy"


def _featurize(args: tuple[str, float | None, float | None, dict[str, Any], str]) -> None:
    """Frames of one clip's segment, written new and renamed (a worker process runs this)."""
    path, start, end, frontend, target = args
    from searchengine.audio import load_waveform

    frames = LogMelPitchFrontend(FrontendConfig(**frontend))(load_waveform(Path(path), start, end))
    tmp = Path(target).with_suffix(".tmp.npy")
    np.save(tmp, frames.astype(np.float16))
    tmp.replace(target)


def cache_speech_frames(clips: list[Clip], frontend: FrontendConfig, cache_dir: Path, workers: int,
                        log: Callable[[str], None], shared_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames of every clip, concatenated (float16) with offsets.

    Each clip's frames are cached in their own file (keyed by its audio and frontend settings), so the
    cache fills incrementally: an interrupted run, or a precompute started while the corpus was still
    being rendered, is never redone. `shared_dir` is another run's cache (`tune-text` passes its base
    model's), read and never written: frames it holds under the same key are not computed again.
    """
    (cache_dir / "frames").mkdir(parents=True, exist_ok=True)
    targets = [_frame_file(cache_dir, c, frontend) for c in clips]
    if shared_dir is not None:
        for i, clip in enumerate(clips):
            elsewhere = _frame_file(shared_dir, clip, frontend)
            if not targets[i].is_file() and elsewhere.is_file():
                targets[i] = elsewhere
    todo = [(str(c.path), c.start, c.end, asdict(frontend), str(t))
            for c, t in zip(clips, targets, strict=True) if not t.is_file()]
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
    """Frozen last-layer token states of captions, pooled on demand (for `head_mean` towers: handed to the
    head as a `TokenBatch`, which maps every token before the mean).

    Indexing with caption ids returns pooled [N, D] features like the cached pooled tensor does, so the
    trainer treats both alike; the gradient reaches the head through them.
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


def cache_text_features(model: CLSP, captions: list[str], cache_dir: Path, log: Callable[[str], None],
                        dtype: str = "float32", shared_dir: Path | None = None) -> torch.Tensor | TokenStates:
    """Frozen-text-tower features of the given captions, computing only unseen ones.

    Pooled [U, D] features when the tower's pooling has no weights; token states (float16, `TokenStates`)
    when the projection head maps every token (`head_mean` pooling). `dtype="bfloat16"` runs the tower under bf16
    autocast: about 1.5x faster on CPUs with AMX or AVX512-BF16, states within about 0.6% (relative) of
    float32, which the float16 cache and the trained head absorb; the cache key records the precision.

    The tower's raw last-layer states do not depend on how they are pooled, so they are kept once more
    in a store of their own (`token_state_store`): a pooled pass (`clsp-search train`) writes the states
    it pools beside its features, and a per-token pass (`tune-text`) reads the states of captions it
    shares with another run's store in `shared_dir` (its base model's cache) instead of running the tower
    on them again. The stored states were computed in other batches, so they can differ from a fresh pass
    in the last bits (bf16) or not at all (float32 agrees to float16 rounding).
    """
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"text feature dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
    tower = model.text_tower
    tokens = tower.pooling == "head_mean"
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
                    hidden = tower.token_states(**prepared).float().numpy().astype(np.float16)
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
        return TokenStates([known[c] for c in captions], tower.pool_tokens)
    return torch.from_numpy(np.stack([known[c] for c in captions]).astype(np.float32))


def token_state_store(model: CLSP, dtype: str) -> str | None:
    """File name (in a run's cache) of the frozen text tower's raw last-layer token states, keyed by what
    makes them: the tower's settings but its pooling, and the precision. None when the tower's states are
    not raw last-layer ones (a token memory blends them, a trainable tower changes them) or its
    pooling reads the model's pooler instead."""
    tower = model.text_tower
    config = dict(model.config["text_tower"])
    if (getattr(tower, "memory", None) is not None or config.get("trainable")
            or getattr(tower, "pooling", "pooler") == "pooler" or not hasattr(tower, "token_states")):
        return None
    for setting in ("pooling", "token_memory"):  # inactive here, or no part of the states
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

