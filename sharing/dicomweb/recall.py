"""What one process remembers of decisions shared through the cache, each until the moment it
ends there, so that a viewer's next request asks the cache nothing. Bounded: forgotten wholesale
when full."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class Recall(Generic[V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[str, tuple[float, V]] = {}

    def get(self, key: str, now: float) -> V | None:
        """The value kept for ``key``, unless it ended by ``now``."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > now else None

    def keep(self, key: str, value: V, until: float) -> None:
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (until, value)

    def clear(self) -> None:
        self._entries.clear()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))
