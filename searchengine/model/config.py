"""Model configurations: a registry of named JSON files, as open_clip keeps them.

A configuration fully describes the architecture (towers, heads, embedding size) so that a checkpoint
directory is `config.json` + `model.safetensors` and nothing else needs to be remembered in code.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

#: CLSP initialises the learnable temperature like CLIP: logit_scale = log(1 / 0.07).
DEFAULT_INIT_LOGIT_SCALE = math.log(1 / 0.07)


def list_model_configs() -> list[str]:
    """Names of the architectures that ship with the package."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def get_model_config(name: str) -> dict[str, Any]:
    """Return a deep copy of a named architecture, so callers may edit it freely."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"unknown model config {name!r}; known: {', '.join(list_model_configs())}")
    return copy.deepcopy(json.loads(path.read_text()))
