"""Offline model loading: the hub is never contacted at load time, and names resolve to local copies.

Why: huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported (into
`huggingface_hub.constants.HF_HUB_OFFLINE`); setting the variable later changes nothing, so a model
whose code asks for "roberta-base" by name would still reach for the network. `force_offline` sets
the variables and, when huggingface_hub is already imported, its constant too; `searchengine.model`
calls it on import, before anything imports huggingface_hub or transformers. Only
`clsp-search models download` goes online, inside `online()`.

Released models' code loads other models by name (CLSP: "roberta-base"; ParaSpeechCLAP:
"microsoft/wavlm-large", "ibm-granite/..."). `clsp-search models download` stores them under the
model's directory in `by_name/<name>/`, and `names_resolve_to(directory)` makes those names resolve
there while the model is built: transformers takes a name that is an existing directory relative to
the working directory as a local model, which is the one resolution rule every version keeps.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

BY_NAME_DIR = "by_name"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_CWD_LOCK = threading.RLock()


def force_offline() -> None:
    """Offline mode for huggingface_hub / transformers, whether or not they are imported yet."""
    for variable in OFFLINE_VARIABLES:
        os.environ[variable] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


def hub_is_offline() -> bool:
    """What huggingface_hub itself will do (its constant, not the environment)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@contextlib.contextmanager
def online() -> Iterator[None]:
    """Network access for `models download` only; offline again afterwards."""
    from huggingface_hub import constants

    for variable in OFFLINE_VARIABLES:
        os.environ.pop(variable, None)
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        force_offline()


def local_copy(directory: Path, name: str) -> Path:
    """Where `models download` keeps a model that `directory`'s code asks for by `name`."""
    return Path(directory) / BY_NAME_DIR / name


@contextlib.contextmanager
def names_resolve_to(directory: Path) -> Iterator[None]:
    """While building a model: names its code asks for resolve to `directory/by_name/<name>`.

    The working directory is process-wide, so this holds a lock and should wrap model construction
    only (seconds), never serving."""
    root = Path(directory).resolve() / BY_NAME_DIR
    with _CWD_LOCK:
        previous = os.getcwd()
        os.chdir(root if root.is_dir() else Path(directory).resolve())
        try:
            yield
        finally:
            os.chdir(previous)


__all__ = ["BY_NAME_DIR", "force_offline", "hub_is_offline", "local_copy", "names_resolve_to", "online"]
