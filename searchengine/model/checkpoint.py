"""Checkpoint directories: `config.json` + `model.safetensors` (+ `text_tower/` when it is stored).

A frozen pretrained text tower is referenced by its `source` in config.json instead of being copied,
which keeps the bundled clsp-mini at a few MB; a fine-tuned text tower is stored in
model.safetensors with its architecture and tokenizer files under `text_tower/`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TEXT_TOWER_DIR = "text_tower"
CHECKPOINT_FORMAT = "clsp-search/1"
TEXT_MODEL_PREFIX = "text_tower.model."


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete or unreadable."""


def _stores_text_tower(config: dict[str, Any]) -> bool:
    return bool(config["text_tower"].get("trainable", False))


def _is_stored(key: str, config: dict[str, Any]) -> bool:
    """Whether a state-dict entry is written: everything but a referenced (frozen) text tower's weights."""
    return _stores_text_tower(config) or not key.startswith(TEXT_MODEL_PREFIX)


def save_checkpoint(model: torch.nn.Module, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `model` (a CLSP) as a checkpoint directory and return its path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = dict(model.config)
    config["format"] = CHECKPOINT_FORMAT
    if extra:
        config.update(extra)
    state = model.state_dict()
    if _stores_text_tower(config):
        model.text_tower.model.config.save_pretrained(directory / TEXT_TOWER_DIR)
        model.text_tower.tokenizer.save_pretrained(directory / TEXT_TOWER_DIR)
    else:
        state = {k: v for k, v in state.items() if _is_stored(k, config)}
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": CHECKPOINT_FORMAT})
    tmp.replace(directory / WEIGHTS_FILE)
    config_tmp = directory / (CONFIG_FILE + ".tmp")
    with open(config_tmp, "w") as handle:  # new file, flushed to disk, then renamed: never half-written
        handle.write(json.dumps(config, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    config_tmp.replace(directory / CONFIG_FILE)
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    """Read and sanity-check a checkpoint's config.json."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory} is not a clsp-search checkpoint: expected {CONFIG_FILE} and {WEIGHTS_FILE} in it"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); expected a clsp-search model config") from exc
    missing = [key for key in ("speech_tower", "text_tower") if key not in config]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; expected a clsp-search model config")
    return config


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu",
                    defer_text_weights: bool = False) -> torch.nn.Module:
    """Build the CLSP described by `directory/config.json` and load its weights. `defer_text_weights`
    leaves a referenced (frozen) text tower's transformers model unloaded until it is used; only on CPU,
    where the deferred model is later loaded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from searchengine.model.clsp import CLSP

    directory = Path(directory)
    config = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory} has {CONFIG_FILE} but no {WEIGHTS_FILE}; expected both")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is corrupt or not a safetensors file ({exc})") from exc
    stored_text = _stores_text_tower(config)
    text_dir = directory / TEXT_TOWER_DIR if stored_text else None
    if stored_text and not (text_dir / "config.json").is_file():
        raise CheckpointError(f"{directory} stores a fine-tuned text tower but lacks {TEXT_TOWER_DIR}/config.json")
    model = CLSP(config, text_model_dir=text_dir,
                 defer_text_weights=defer_text_weights and torch.device(device).type == "cpu")
    expected = {k for k in model.state_dict() if _is_stored(k, config)}
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match {CONFIG_FILE}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    model.load_state_dict(state, strict=False)
    return model.to(device).eval()


def file_checksum(*paths: str | Path, length: int = 12) -> str:
    """Short sha256 over files, in order: identifies exact weights for `model_id`."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:length]
