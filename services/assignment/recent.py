"""A bounded cache of the values used most recently, cheap enough for the hot path."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentValues(Generic[K, V]):
    """Two generations of plain dicts: a hit in the older one moves to the newer; when the newer fills up, the older
    is dropped. An LRU within a factor of two of its size, at the cost of dict lookups (``cachetools.LRUCache``
    costs microseconds per hit, a fifth of a cached request). A size of 0 keeps nothing."""

    def __init__(self, size: int) -> None:
        self._half = size // 2 if size > 1 else size
        self._newer: dict[K, V] = {}
        self._older: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        found = self._newer.get(key)
        if found is None:
            found = self._older.get(key)
            if found is not None:
                self[key] = found
        return found

    def __setitem__(self, key: K, value: V) -> None:
        if not self._half:
            return
        if len(self._newer) >= self._half:
            self._older, self._newer = self._newer, {}
        self._newer[key] = value

    def clear(self) -> None:
        self._newer.clear()
        self._older.clear()
