"""Applies a batch of decoded events to Redis with one call of ``fold.lua``, so a batch lands entirely or not at all.

The script marks every event it applies (``{p}:seen:{event_id}``, kept ``dedup_ttl`` seconds) and skips marked
ones, so applying the same batch twice, as a consumer restarted between apply and offset commit does, changes
nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Final

from redis.asyncio import Redis

from splitstream.events import Exposure, TrackEvent
from splitstream.keys import RedisKeys

FOLD_SCRIPT: Final = files("services.collector.adapters").joinpath("fold.lua").read_text(encoding="utf-8")

STATS_COUNTERS: Final = ("applied", "duplicates", "orphan_exposures", "overflow", "poison")
"""Counters kept at ``{p}:stats:{counter}``: events applied (first deliveries, orphans included), redelivered
events skipped, exposures to unknown experiments or variants, metric updates skipped because a float sum would
overflow, and records that could not be decoded."""


async def read_stats(redis: Redis, keys: RedisKeys) -> dict[str, int]:
    values = await redis.mget([keys.stats(counter) for counter in STATS_COUNTERS])
    return {counter: int(value or 0) for counter, value in zip(STATS_COUNTERS, values, strict=True)}


@dataclass(frozen=True, slots=True)
class FoldOutcome:
    applied: int
    duplicates: int
    orphan_exposures: int
    overflow: int
    poison: int


def script_fields(event: Exposure | TrackEvent) -> tuple[str, str, str, str, str, str]:
    """The six ARGV fields ``fold.lua`` reads per event; ``repr`` keeps a float's every digit."""
    if isinstance(event, Exposure):
        second, third = event.experiment, event.variant
    else:
        second, third = event.name, "" if event.value is None else repr(event.value)
    return event.type, event.event_id, event.user_id, second, third, str(event.timestamp_ms)


class StatisticsFolder:
    def __init__(
        self, redis: Redis, keys: RedisKeys, *, dedup_ttl_seconds: int, pending_ttl_seconds: int,
        pending_max_events: int,
    ) -> None:
        self._script = redis.register_script(FOLD_SCRIPT)
        self._header = (keys.prefix, dedup_ttl_seconds, pending_ttl_seconds, pending_max_events)

    async def apply(self, events: Sequence[Exposure | TrackEvent], *, poison: int = 0) -> FoldOutcome:
        """Fold ``events`` in order and count ``poison`` undecodable records, in one atomic script call."""
        args: list[str | int] = [*self._header, poison]
        for event in events:
            args.extend(script_fields(event))
        applied, duplicates, orphans, overflow = await self._script(keys=[], args=args)
        return FoldOutcome(int(applied), int(duplicates), int(orphans), int(overflow), poison)
