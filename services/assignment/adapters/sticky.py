"""Sticky assignments in Redis: the variant a unit got first in a phase, kept when weights or coverage change.

One hash per unit (``RedisKeys.sticky``), one field per experiment and phase (``sticky_field``). The value is the
variant key, followed by ``UNLOGGED`` while no exposure has been logged for it (an assignment asked for with
``log_exposure=false``). A recorded-and-logged value never changes within its phase, so it is cached in memory:
a returning user costs no Redis round trip at all. The lookups and records of concurrent requests share round trips
(:class:`_SharedPipeline`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from redis.asyncio import Redis

from services.assignment.recent import RecentValues
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


Command = tuple[str | bytes | int, ...]


class _SharedPipeline:
    """Runs the commands of concurrent callers in one pipeline: a caller's commands join the batch being gathered,
    which is sent as soon as the previous one has been answered (one batch in flight at a time, so a batch holds
    what arrived during one round trip). On this hardware a socket write or read costs more than the Python around
    it, so first visits cost a share of one write and one read each instead of one of each per request.

    A caller gets the replies of its own commands, in order; an error reply or a failed connection raises for the
    callers concerned, as their own pipeline would have."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._gathering: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        answered: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._gathering.append((commands, answered))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_batches(), name="sticky-pipeline")
        replies = await answered
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _send_batches(self) -> None:
        try:
            while self._gathering:
                batch, self._gathering = self._gathering, []
                await self._send(batch)
        except asyncio.CancelledError:  # the loop is shutting down: nobody may wait for an answer forever
            for _, answered in self._gathering:
                answered.cancel()
            self._gathering = []
            raise
        finally:
            self._sender = None

    async def _send(self, batch: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for commands, _ in batch:
                    for command in commands:
                        pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _, answered in batch:
                answered.cancel()
            raise
        except Exception as error:
            # Each caller decides what a failure means to it (the service hashes without stickies, or logs).
            for _, answered in batch:
                if not answered.done():
                    answered.set_exception(error)
            return
        start = 0
        for commands, answered in batch:
            if not answered.done():  # a caller that was cancelled meanwhile
                answered.set_result(replies[start:start + len(commands)])
            start += len(commands)


class StickyStore:
    def __init__(self, redis: Redis, keys: RedisKeys, *, cache_size: int = 200_000) -> None:
        self._redis = redis
        self._keys = keys
        self._cache: RecentValues[StickyKey, StickyValue] = RecentValues(cache_size)
        self._pipeline = _SharedPipeline(redis)

    async def lookup(self, wanted: Sequence[StickyKey]) -> dict[StickyKey, StickyValue]:
        """The recorded values among ``wanted``: from memory when possible, else in one (shared) round trip."""
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
        replies = await self._pipeline.run([
            ("HMGET", self._keys.sticky(unit, unit_id), *(key.field for key in keys))
            for (unit, unit_id), keys in missing.items()
        ])
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
        commands: list[Command] = []
        for key, value in writes:
            hash_key = self._keys.sticky(key.unit, key.unit_id)
            commands.append(("HSETNX" if key in first else "HSET", hash_key, key.field, value.encode()))
            commands.append(("EXPIRE", hash_key, STICKY_TTL_SECONDS))
        replies = await self._pipeline.run(commands)
        # Two replies per write (the write, the expiry); an HSETNX that found a record wrote nothing, so only the
        # values actually stored are cached (HSET's reply counts new fields only: an upgrade is always stored).
        for (key, value), stored in zip(writes, replies[::2], strict=True):
            if value.exposure_logged and (stored or key not in first):
                self._cache[key] = value

    def forget(self) -> None:
        self._cache.clear()

