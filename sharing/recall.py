"""What one process remembers of its recent decisions, each until the moment it ends, so that a
viewer's next request asks no one. Bounded: the least recently used is forgotten first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class Recall(Generic[V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()  # the web process's threads share it

    def get(self, key: str, now: float) -> V | None:
        """The value kept for ``key``, unless it ended by ``now``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def keep(self, key: str, value: V, until: float) -> None:
        with self._lock:
            self._entries[key] = (until, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._entries))
