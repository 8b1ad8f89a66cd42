"""A server that follows a growing collection: a watcher swaps in each new committed generation.

Every `reload_s` seconds a thread reads collection.json's generation (a small file the indexer
rewrites atomically after each commit). When it moved, the watcher takes a snapshot of the new
generation (`Collection.open_snapshot`: metadata copied into memory, indexes loaded, the DuckDB file
held only while copying), wraps it in a new `Searcher` that shares the loaded model, and replaces
`app.state.searcher` with one assignment. A request takes its searcher once, at its start
(`api.deps.searcher`), and uses only that one, so every query reads one generation. The old
searcher is not closed: requests still holding it finish on it, and its in-memory copy is freed
when the last of them lets go. A reload that fails (the indexer holds the file through a long
step, a half-written file) is logged and tried again at the next poll; the server keeps answering
from the generation it has.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from searchengine.search import Searcher
from searchengine.store import Collection
from searchengine.store.collection import INFO_FILE

log = logging.getLogger(__name__)


def info_generation(searcher: Searcher) -> int:
    """The collection.json generation the searcher's snapshot was taken at (what the watcher compares)."""
    info = searcher.collection.info
    return int(info.get("info_generation", info["generation"]))


def default_audio_roots(searcher: Searcher) -> tuple[Path, ...]:
    """Where clip audio may be read from when the operator does not say: the deepest directory that
    holds every indexed file. The API only serves clips by id, never a client-given path, and the
    check against these roots (symlinks resolved) keeps a manifest entry such as `../../etc/passwd`
    or a symlink out of reach of the audio endpoint."""
    parents = {os.path.dirname(os.path.abspath(p)) for p in searcher.source_paths() if p}
    if not parents:
        return ()
    return (Path(os.path.commonpath(sorted(parents))),)


class CollectionWatcher:
    """Polls one collection and swaps the app's searcher when a new generation is committed."""

    def __init__(self, app: Any, path: str | os.PathLike, reload_s: float, wait_s: float = 2.0) -> None:
        self.app = app
        self.path = Path(path)
        self.reload_s = reload_s
        self.wait_s = wait_s  # how long one reload waits for the indexer to free the file
        self.reloads = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collection-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _stored_generation(self) -> int | None:
        try:
            return int(json.loads((self.path / INFO_FILE).read_text(encoding="utf-8"))["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # mid-rename or unreadable: look again at the next poll

    def poll(self) -> bool:
        """Reload when the committed generation moved; True when the searcher was replaced."""
        current: Searcher = self.app.state.searcher
        stored = self._stored_generation()
        if stored is None or stored == info_generation(current):
            return False
        try:
            fresh = Searcher(Collection.open_snapshot(self.path, wait_s=self.wait_s), current.encoder)
        except Exception as exc:  # noqa: BLE001 - the server keeps its generation and tries again
            self.failures += 1
            log.warning("collection %s: generation %s not loaded yet (%s); retrying", self.path, stored, exc)
            return False
        if not self.app.state.settings.audio_roots:
            self.app.state.audio_roots = default_audio_roots(fresh)
        self.app.state.searcher = fresh
        self.reloads += 1
        log.info("collection %s: now serving generation %s (%s clips)", self.path, fresh.collection.generation,
                 fresh.collection.info.get("counts", {}).get("clips"))
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.reload_s):
            self.poll()
