"""Reads the per-variant sufficient statistics the collector folds into Redis (layout: splitstream/keys.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from services.analyzer.errors import CorruptStatistics
from splitstream.keys import RedisKeys, moment_field, sum_field, sum_squares_field

USERS_FIELD = "users"


@dataclass(frozen=True, slots=True)
class VariantTotals:
    """One variant's hash: exposed users and, per metric, Σy and Σy² over those users (and a ratio's or a
    covariate's further sums). Absent fields are 0."""

    users: int = 0
    values: Mapping[str, float] = field(default_factory=dict)

    def __add__(self, other: VariantTotals) -> VariantTotals:
        """Totals of two disjoint groups of users: every field is a sum over users."""
        merged = dict(self.values)
        for name, value in other.values.items():
            merged[name] = merged.get(name, 0.0) + value
        return VariantTotals(users=self.users + other.users, values=merged)

    def sum(self, metric: str) -> float:
        return self.values.get(sum_field(metric), 0.0)

    def sum_squares(self, metric: str) -> float:
        return self.values.get(sum_squares_field(metric), 0.0)

    def moment(self, metric: str, name: str) -> float:
        """Another per-metric sum of the hash (``moment_field``): a ratio's or a CUPED covariate's."""
        return self.values.get(moment_field(metric, name), 0.0)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def parse_totals(key: str, raw: Mapping[bytes | str, bytes | str]) -> VariantTotals:
    values: dict[str, float] = {}
    for name, value in raw.items():
        try:
            values[_text(name)] = float(_text(value))
        except ValueError as error:
            raise CorruptStatistics(f"{key}: field {_text(name)!r} is not a number: {_text(value)!r}") from error
    return VariantTotals(users=int(values.pop(USERS_FIELD, 0)), values=values)


class VariantStatsReader:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def read_segments(
        self, scope: str, dimension: str, variants: Sequence[str]
    ) -> dict[str, dict[str, VariantTotals]]:
        """Per value of one segment dimension, the variants' statistics among its users (one MULTI/EXEC)."""
        values = sorted(_text(raw) for raw in await self._redis.smembers(self._keys.segment_values(scope, dimension)))
        keys = [self._keys.segment_stats(scope, dimension, value, variant) for value in values for variant in variants]
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes = iter(zip(keys, await pipe.execute(), strict=True))
        return {value: {variant: parse_totals(*next(hashes)) for variant in variants} for value in values}

    async def read(self, experiment: str, variants: Sequence[str]) -> dict[str, VariantTotals]:
        """All variants in one MULTI/EXEC, so the arms come from the same instant of the aggregation."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for variant in variants:
                pipe.hgetall(self._keys.variant_stats(experiment, variant))
            hashes = await pipe.execute()
        return {
            variant: parse_totals(self._keys.variant_stats(experiment, variant), raw)
            for variant, raw in zip(variants, hashes, strict=True)
        }
