"""Where the networks we export to ONNX live, and how a graph file is written so no reader sees half of it.

Two networks are exported on first use and kept for later processes: the CLSP text path of each model
(`searchengine/model/onnx_text.py`) and the speaker encoder (`searchengine/attributes/speaker.py`).
Both go to one cache folder, `$CLSP_SEARCH_CACHE/onnx` or `~/.cache/clsp-search/onnx`, and are written
the same way: to a temporary file in that folder, fsynced, then renamed over the final name (and the
folder fsynced), so a killed process leaves no half-written graph and two processes exporting at
once each publish a whole one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "CLSP_SEARCH_CACHE"


def cache_dir() -> Path:
    """Where exported graphs live: `$CLSP_SEARCH_CACHE/onnx` or `~/.cache/clsp-search/onnx`."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "clsp-search") / "onnx"


def write_atomically(path: Path, write: Callable[[str], None]) -> Path:
    """Have `write(tmp)` write a file, then publish it as `path`: fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    try:
        os.chmod(tmp, 0o644)
        write(tmp)
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError:
            pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


__all__ = ["CACHE_ENV", "cache_dir", "write_atomically"]
