"""`load_model`: one entry point from a name or a path to a ready `Encoder`; `load_model_with_id`: the
encoder a collection's vectors were made with.

Names are bundled checkpoints (under `weights/`); a directory is recognised by its config.json, by
the first row of `ADAPTERS` that claims it: our own checkpoints carry `"format": "clsp-search/..."`,
the released CLSP declares an `auto_map` for its own modeling code, and LAION CLAP has
`model_type: "clap"`. Adding a model is one `Encoder` subclass and one row here; its module is
imported only when such a directory is loaded, so `import searchengine.model` stays cheap.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from searchengine.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    file_checksum,
    load_checkpoint,
)
from searchengine.model.download import models_root
from searchengine.model.encoder import ClspEncoder, Encoder, resolve_device
from searchengine.model.offline import force_offline

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "clsp-mini"


@dataclass(frozen=True)
class Adapter:
    """One kind of model directory and how to load it.

    `loader` is "module:attribute", a callable `(directory, device, name) -> Encoder` (an `Encoder`
    subclass with that constructor is one); `name` is the spec the user gave. `claims` says whether a
    directory's parsed config.json is of this kind; `marker` and `origin` word the errors that list
    what a model directory can be."""

    kind: str
    claims: Callable[[Mapping[str, Any]], bool]
    loader: str
    marker: str  # how the config declares the kind, for "is neither ..."
    origin: str  # where such a directory comes from, for "expected config.json from ..."

    def load(self, directory: Path, device: torch.device, name: str) -> Encoder:
        module, _, attribute = self.loader.partition(":")
        return getattr(importlib.import_module(module), attribute)(directory, device, name=name)


def open_checkpoint(directory: Path, device: torch.device, name: str | None = None) -> Encoder:
    """A clsp-search checkpoint (ours): named by its config, identified by its weights' checksum. A
    frozen text tower's model loads on first use: text on the exported graph never needs it."""
    model = load_checkpoint(directory, device, defer_text_weights=True)
    return ClspEncoder(model, model.config.get("name", directory.name), file_checksum(directory / WEIGHTS_FILE), device)


ADAPTERS: tuple[Adapter, ...] = (
    Adapter("clsp-search", lambda c: str(c.get("format", "")).startswith("clsp-search"),
            "searchengine.model.registry:open_checkpoint",
            "a clsp-search checkpoint (format)", "`clsp-search train`"),
    # A CLAP config that also had an auto_map would still be CLAP: the released CLSP is the remote-code
    # model that is not a transformers CLAP.
    Adapter("clsp-released", lambda c: "auto_map" in c and c.get("model_type") != "clap",
            "searchengine.model.adapters.clsp_released:ReleasedClspEncoder",
            "a released CLSP (auto_map)", "the released CLSP (`clsp-search models download clsp`)"),
    Adapter("paraspeechclap", lambda c: c.get("model_type") == "paraspeechclap",
            "searchengine.model.adapters.paraspeechclap:ParaSpeechClapEncoder",
            "ParaSpeechCLAP (model_type 'paraspeechclap')", "`clsp-search models download paraspeechclap`"),
    Adapter("clap", lambda c: c.get("model_type") == "clap",
            "searchengine.model.adapters.clap:ClapEncoder",
            "CLAP (model_type 'clap')", "a CLAP model"),
)
"""Every kind of model directory, first match wins."""


def list_models() -> list[str]:
    """Names of the checkpoints bundled with the package."""
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / CONFIG_FILE).is_file()) if WEIGHTS_DIR.is_dir() else []


def _listed(items: Sequence[str], last: str) -> str:
    """'a, b{last} c': 'a, b, or c' / 'a, b nor c'."""
    return ", ".join(items[:-1]) + f"{last} " + items[-1] if len(items) > 1 else "".join(items)


def adapter_for(directory: Path) -> Adapter:
    """The `ADAPTERS` row that claims a checkpoint directory, from its config.json."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory} is not a model directory: expected {CONFIG_FILE} (+ {WEIGHTS_FILE}) from "
            f"{_listed([a.origin for a in ADAPTERS], ', or')}"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    for adapter in ADAPTERS:
        if adapter.claims(config):
            return adapter
    raise CheckpointError(
        f"{path} is neither {_listed([a.marker for a in ADAPTERS], ' nor')}; found keys {sorted(config)[:8]}"
    )


def detect_kind(directory: Path) -> str:
    """The kind of a checkpoint directory ('clsp-search', 'clsp-released', 'clap', ...: `ADAPTERS`)."""
    return adapter_for(directory).kind


def _hub_cache_dir(repo_id: str) -> Path | None:
    """Directory of a hub model already in the local Hugging Face cache, without any network."""
    force_offline()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "auto") -> Encoder:
    """Load a bundled model by name, a downloaded release by name ($CLSP_SEARCH_MODELS/NAME or models/NAME),
    a checkpoint directory (or one `.pth.tar` in one), or a hub id present in the local cache."""
    device = resolve_device(device)
    name = str(name_or_path)
    if (WEIGHTS_DIR / name / CONFIG_FILE).is_file():
        directory = WEIGHTS_DIR / name
    elif (models_root() / name / CONFIG_FILE).is_file():
        directory = models_root() / name  # `clsp-search models download NAME` without --dir
    elif Path(name).is_file() and name.endswith(".pth.tar"):
        directory = Path(name).parent  # one checkpoint of a directory holding several (ParaSpeechCLAP's)
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
    return adapter_for(directory).load(directory, device, name)


# ------------------------------------------------------------------------------ by model id
class WrongModelError(CheckpointError):
    """The model asked for loads, but its weights are not the ones wanted (another `model_id`)."""

    def __init__(self, needed: str, offered: str) -> None:
        self.needed, self.offered = needed, offered
        super().__init__(f"model '{offered}' is not the wanted '{needed}'")


class ModelNotFoundError(CheckpointError):
    """No candidate loads as the wanted `model_id`; `tried` says what each candidate was instead."""

    def __init__(self, needed: str, tried: list[str]) -> None:
        self.needed, self.tried = needed, tried
        super().__init__(f"cannot find the model {needed}. Tried: {'; '.join(tried) or 'nothing'}")


def load_model_with_id(
    model_id: str, model: str | None = None, fallbacks: Sequence[str] = (), device: str | torch.device = "auto"
) -> Encoder:
    """The encoder whose `model_id` (name@checksum of its weights) is `model_id`.

    Vectors of two models are not comparable, so the checksum is checked, never assumed. `model` (a
    name or a checkpoint directory) is loaded and must match (WrongModelError). Without it the bundled
    model named in the id is tried, then each of `fallbacks` (e.g. the model specs a collection's
    indexing runs recorded); ModelNotFoundError when none is it.
    """
    tried: list[str] = []
    candidates = [model] if model else [model_id.split("@")[0], *fallbacks]
    for spec in dict.fromkeys(candidates):
        try:
            encoder = load_model(spec, device=device)
        except (CheckpointError, OSError, ValueError) as exc:
            tried.append(f"{spec}: {exc}")
            continue
        if encoder.model_id == model_id:
            return encoder
        if model:
            raise WrongModelError(model_id, encoder.model_id)
        tried.append(f"{spec}: is {encoder.model_id}")
    raise ModelNotFoundError(model_id, tried)


__all__ = [
    "ADAPTERS",
    "DEFAULT_MODEL",
    "WEIGHTS_DIR",
    "Adapter",
    "ModelNotFoundError",
    "WrongModelError",
    "adapter_for",
    "detect_kind",
    "list_models",
    "load_model",
    "load_model_with_id",
    "open_checkpoint",
]
