"""CLSP speech-text models: towers, heads, losses, checkpoints, and the `Encoder` every caller uses.

    from searchengine.model import load_model
    encoder = load_model("clsp-mini")            # or a checkpoint directory / released CLSP / CLAP
    speech = encoder.encode_speech([waveform], sample_rate=22050)   # float32 [1, 512], L2-normalised
    text = encoder.encode_text(["a fast, high-pitched female voice"])
    scores = speech @ text.T

Names are resolved lazily so that `import searchengine.model.cli` (and `clsp-search --help`) does not
pay for importing torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

from searchengine.model.offline import force_offline

# Before anything imports huggingface_hub or transformers: it reads HF_HUB_OFFLINE once, at import.
force_offline()

_EXPORTS = {
    "CheckpointError": "searchengine.model.checkpoint",
    "load_checkpoint": "searchengine.model.checkpoint",
    "save_checkpoint": "searchengine.model.checkpoint",
    "get_model_config": "searchengine.model.config",
    "list_model_configs": "searchengine.model.config",
    "DEFAULT_ZERO_SHOT_TEMPLATE": "searchengine.model.encoder",
    "ClspEncoder": "searchengine.model.encoder",
    "Encoder": "searchengine.model.encoder",
    "DEFAULT_MODEL": "searchengine.model.registry",
    "list_models": "searchengine.model.registry",
    "load_model": "searchengine.model.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'searchengine.model' has no attribute {name!r}")
