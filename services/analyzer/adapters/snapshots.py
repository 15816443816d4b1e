"""Snapshots of an experiment's per-variant statistics in Redis, one list per stats scope (splitstream/keys.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from services.analyzer.adapters.variant_stats import VariantStatsReader, VariantTotals
from services.analyzer.errors import CorruptStatistics
from splitstream.keys import RedisKeys

MAX_SNAPSHOTS = 10_000
"""Hourly for more than a year; the oldest go first."""


class VariantSnapshot(BaseModel):
    users: int
    values: dict[str, float]

    def totals(self) -> VariantTotals:
        return VariantTotals(users=self.users, values=self.values)


class Snapshot(BaseModel):
    at: datetime
    variants: dict[str, VariantSnapshot]

    def totals(self) -> dict[str, VariantTotals]:
        return {key: variant.totals() for key, variant in self.variants.items()}


class SnapshotLog:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._stats = VariantStatsReader(redis, keys)

    async def take(self, scope: str, variants: list[str], at: datetime) -> Snapshot:
        """Read the variants' statistics (from one instant) and append them as a snapshot taken ``at``."""
        totals = await self._stats.read(scope, variants)
        snapshot = Snapshot(at=at, variants={
            key: VariantSnapshot(users=variant.users, values=dict(variant.values)) for key, variant in totals.items()
        })
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._keys.snapshots(scope), snapshot.model_dump_json())
            pipe.ltrim(self._keys.snapshots(scope), -MAX_SNAPSHOTS, -1)
            await pipe.execute()
        return snapshot

    async def read(self, scope: str) -> list[Snapshot]:
        raws = await self._redis.lrange(self._keys.snapshots(scope), 0, -1)
        try:
            return [Snapshot.model_validate_json(raw) for raw in raws]
        except ValidationError as error:
            raise CorruptStatistics(f"{self._keys.snapshots(scope)}: {error}") from error
