"""A small thread-safe LRU: query vectors and clip records that a server reads again and again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import Any


class LruCache:
    """At most `size` entries, least recently used dropped first; `size <= 0` keeps nothing. Safe to
    share between threads (one lock around each operation)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, Any]:
        """The entries present among `keys` (one lock for all of them)."""
        with self._lock:
            found = {key: self._entries[key] for key in keys if key in self._entries}
            for key in found:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, value: Any) -> None:
        self.put_many({key: value})

    def put_many(self, items: Mapping[Hashable, Any]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            for key, value in items.items():
                self._entries[key] = value
                self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


__all__ = ["LruCache"]
