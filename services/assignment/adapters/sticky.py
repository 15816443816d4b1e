"""Sticky assignments in Redis: the variant a unit got first in a phase, kept when weights or coverage change.

One hash per unit (``RedisKeys.sticky``), one field per experiment and phase (``sticky_field``). The value is the
variant key, followed by ``UNLOGGED`` while no exposure has been logged for it (an assignment asked for with
``log_exposure=false``). A recorded-and-logged value never changes within its phase, so it is cached in memory:
a returning user costs no Redis round trip at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from redis.asyncio import Redis

from splitstream.keys import RedisKeys

UNLOGGED = "|unlogged"
STICKY_TTL_SECONDS = 180 * 24 * 3600
"""A unit unseen for this long loses its sticky record (longer than any experiment should run)."""


# Named tuples: hashed and compared several times per request, in C.
class StickyKey(NamedTuple):
    unit: str
    """The unit attribute's name: ``user_id``, ``device_id``..."""
    unit_id: str
    field: str


class StickyValue(NamedTuple):
    variant: str
    exposure_logged: bool

    def encode(self) -> str:
        return self.variant if self.exposure_logged else self.variant + UNLOGGED

    @classmethod
    def decode(cls, raw: bytes | str) -> StickyValue:
        text = raw.decode() if isinstance(raw, bytes) else raw
        if text.endswith(UNLOGGED):
            return cls(text[: -len(UNLOGGED)], exposure_logged=False)
        return cls(text, exposure_logged=True)


class _RecentValues:
    """A bounded cache of the values used most recently, in two generations of plain dicts: a hit in the older one
    moves to the newer; when the newer fills up, the older is dropped. An LRU within a factor of two of its size,
    at the cost of dict lookups (``cachetools.LRUCache`` costs microseconds per hit, a fifth of a cached request)."""

    def __init__(self, size: int) -> None:
        self._half = max(1, size // 2)
        self._newer: dict[StickyKey, StickyValue] = {}
        self._older: dict[StickyKey, StickyValue] = {}

    def get(self, key: StickyKey) -> StickyValue | None:
        found = self._newer.get(key)
        if found is None:
            found = self._older.get(key)
            if found is not None:
                self[key] = found
        return found

    def __setitem__(self, key: StickyKey, value: StickyValue) -> None:
        if len(self._newer) >= self._half:
            self._older, self._newer = self._newer, {}
        self._newer[key] = value

    def clear(self) -> None:
        self._newer.clear()
        self._older.clear()


class StickyStore:
    def __init__(self, redis: Redis, keys: RedisKeys, *, cache_size: int = 200_000) -> None:
        self._redis = redis
        self._keys = keys
        self._cache = _RecentValues(cache_size)

    async def lookup(self, wanted: Sequence[StickyKey]) -> dict[StickyKey, StickyValue]:
        """The recorded values among ``wanted``: from memory when possible, else in one pipelined round trip."""
        found: dict[StickyKey, StickyValue] = {}
        missing: dict[tuple[str, str], list[StickyKey]] = {}
        for key in wanted:
            cached = self._cache.get(key)
            if cached is not None:
                found[key] = cached
            else:
                missing.setdefault((key.unit, key.unit_id), []).append(key)
        if not missing:
            return found
        async with self._redis.pipeline(transaction=False) as pipe:
            for (unit, unit_id), keys in missing.items():
                pipe.hmget(self._keys.sticky(unit, unit_id), [key.field for key in keys])
            replies = await pipe.execute()
        for keys, values in zip(missing.values(), replies, strict=True):
            for key, raw in zip(keys, values, strict=True):
                if raw is not None:
                    value = StickyValue.decode(raw)
                    found[key] = value
                    if value.exposure_logged:
                        self._cache[key] = value
        return found

    async def record(self, first: Mapping[StickyKey, StickyValue], now_logged: Mapping[StickyKey, str]) -> None:
        """Record ``first`` assignments where none exists yet (HSETNX: a concurrent first writer wins), and mark
        the ``now_logged`` sticky variants (key → variant) as exposed."""
        if not first and not now_logged:
            return
        writes: list[tuple[StickyKey, StickyValue]] = [
            *first.items(), *((key, StickyValue(variant, exposure_logged=True)) for key, variant in now_logged.items()),
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, value in writes:
                hash_key = self._keys.sticky(key.unit, key.unit_id)
                if key in first:
                    pipe.hsetnx(hash_key, key.field, value.encode())
                else:
                    pipe.hset(hash_key, key.field, value.encode())
                pipe.expire(hash_key, STICKY_TTL_SECONDS)
            replies = await pipe.execute()
        # Two replies per write (the write, the expiry); an HSETNX that found a record wrote nothing, so only the
        # values actually stored are cached (HSET's reply counts new fields only: an upgrade is always stored).
        for (key, value), stored in zip(writes, replies[::2], strict=True):
            if value.exposure_logged and (stored or key not in first):
                self._cache[key] = value

    def forget(self) -> None:
        self._cache.clear()

