"""`load_model`: one entry point from a name or a path to a ready `Encoder`.

Names are bundled checkpoints (under `weights/`); a directory is recognised by its config.json:
our own checkpoints carry `"format": "clsp-search/..."`, the released CLSP declares an `auto_map`
for its own modeling code, and LAION CLAP has `model_type: "clap"`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from searchengine.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    file_checksum,
    load_checkpoint,
)
from searchengine.model.encoder import ClspEncoder, Encoder, resolve_device

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "clsp-mini"


def list_models() -> list[str]:
    """Names of the checkpoints bundled with the package."""
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / CONFIG_FILE).is_file()) if WEIGHTS_DIR.is_dir() else []


def detect_kind(directory: Path) -> str:
    """'clsp-search', 'clsp-released' or 'clap', from a checkpoint directory's config.json."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory} is not a model directory: expected {CONFIG_FILE} (+ {WEIGHTS_FILE}) from "
            "`clsp-search train`, the released CLSP (huggingface-cli download yfyeung/CLSP), or a CLAP model"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from exc
    if str(config.get("format", "")).startswith("clsp-search"):
        return "clsp-search"
    if config.get("model_type") == "clap":
        return "clap"
    if "auto_map" in config:
        return "clsp-released"
    raise CheckpointError(
        f"{path} is neither a clsp-search checkpoint (format), a released CLSP (auto_map) nor CLAP "
        f"(model_type 'clap'); found keys {sorted(config)[:8]}"
    )


def _hub_cache_dir(repo_id: str) -> Path | None:
    """Directory of a hub model already in the local Hugging Face cache, without any network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "auto") -> Encoder:
    """Load a bundled model by name, a checkpoint directory, or a hub id present in the local cache."""
    device = resolve_device(device)
    name = str(name_or_path)
    if (WEIGHTS_DIR / name / CONFIG_FILE).is_file():
        directory = WEIGHTS_DIR / name
    elif Path(name).exists():
        directory = Path(name)
    else:
        cached = _hub_cache_dir(name) if "/" in name and not name.startswith((".", "/")) else None
        if cached is None:
            raise CheckpointError(
                f"no model {name!r}: not a bundled name ({', '.join(list_models()) or 'none'}), not an existing "
                "directory, and not a hub id in the local Hugging Face cache"
            )
        directory = cached
    kind = detect_kind(directory)
    if kind == "clsp-search":
        model = load_checkpoint(directory, device)
        return ClspEncoder(model, model.config.get("name", directory.name), file_checksum(directory / WEIGHTS_FILE), device)
    if kind == "clsp-released":
        from searchengine.model.adapters.clsp_released import ReleasedClspEncoder

        return ReleasedClspEncoder(directory, device, name=name)
    from searchengine.model.adapters.clap import ClapEncoder

    return ClapEncoder(directory, device, name=name)
