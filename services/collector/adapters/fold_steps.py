"""A batch folded in three steps (fold_lua/apply.lua, modes), so that no call needs keys of two places.

On Redis Cluster a user's state (``{p}:user:{<user>}``) and an experiment's statistics (``{p}:exp:{<key>}…``) lie
in different slots, which one atomic call cannot span. The steps, each idempotent or read-only:

1. ``decide``: which events are first deliveries, and each exposure's daily totals of its user (nothing written);
2. ``experiments``: per experiment, the first deliveries that feed it, each with its Kafka record
   (``partition:offset``), which the experiment's user records keep, so a replayed step applies nothing twice;
3. ``record``: the dedup marks and daily totals, skipped where a mark is already there.

A batch's step 1 must follow the previous batch's step 3 (the consumer folds one batch at a time), so that it sees
every mark of the events before it. The consumer reads the metric index itself and hands it to each call: it is
kept under keys of its own. The counters (``{p}:stats:*``) are added up by the consumer after the steps, outside
the atomic calls, so a crash between may leave them off by a batch; the statistics never are.

This module runs the steps against one Redis; routing each call to the node that holds its keys is the cluster
client's part (not built yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.collector.adapters.fold import (
    FOLD_SCRIPT,
    STATS_COUNTERS,
    FoldLimits,
    FoldMode,
    FoldOutcome,
    script_fields,
    script_header,
)
from splitstream.events import Exposure, TrackEvent
from splitstream.keys import PHASE_SEPARATOR, RedisKeys

Event = Exposure | TrackEvent


@dataclass(frozen=True, slots=True)
class RecordId:
    """Where an event came from: its Kafka partition and offset."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


class SteppedFolder:
    def __init__(self, redis: Redis, keys: RedisKeys, limits: FoldLimits) -> None:
        self._redis = redis
        self._keys = keys
        self._limits = limits
        self._script = redis.register_script(FOLD_SCRIPT)

    async def apply(
        self, events: Sequence[Event], arrivals_ms: Sequence[int], records: Sequence[RecordId], *, poison: int = 0
    ) -> FoldOutcome:
        """Fold ``events`` (which arrived at ``arrivals_ms`` from ``records``, index for index) in the three steps;
        the counters are added up last."""
        index = await self._metric_index(events)
        fields = [script_fields(event, arrived) for event, arrived in zip(events, arrivals_ms, strict=True)]
        every_event = [field for event_fields in fields for field in event_fields]
        decided = await self._call("decide", "", index, every_event)
        decisions, snapshots = decided[4].decode(), iter(decided[5])
        firsts: dict[str, list[str | bytes]] = {}
        for position, event in enumerate(events):
            if decisions[position] != "1":
                continue
            totals = next(snapshots) if isinstance(event, Exposure) else b""
            for experiment in _experiments_fed(event, index):
                firsts.setdefault(experiment, []).extend((*fields[position], str(records[position]), totals))
        orphans = overflow = 0
        for experiment, experiment_fields in sorted(firsts.items()):
            folded = await self._call("experiments", experiment, index, experiment_fields)
            orphans, overflow = orphans + int(folded[2]), overflow + int(folded[3])
        await self._call("record", "", index, every_event)
        outcome = FoldOutcome(int(decided[0]), int(decided[1]), orphans, overflow, poison)
        await self._count(outcome)
        return outcome

    async def _metric_index(self, events: Sequence[Event]) -> dict[str, list[str]]:
        names = sorted({event.name for event in events if isinstance(event, TrackEvent)})
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.smembers(self._keys.event_metrics(name))
            members = await pipe.execute()
        return {name: sorted(_text(entry) for entry in entries) for name, entries in zip(names, members, strict=True)}

    async def _call(
        self, mode: FoldMode, experiment: str, index: dict[str, list[str]], fields: list[str | bytes]
    ) -> Any:
        header = script_header(self._keys.prefix, poison=0, mode=mode, experiment=experiment, index=index,
                               **self._limits)
        return await self._script(keys=[], args=[*header, *fields])

    async def _count(self, outcome: FoldOutcome) -> None:
        counts = (outcome.applied, outcome.duplicates, outcome.orphan_exposures, outcome.overflow, outcome.poison)
        async with self._redis.pipeline(transaction=False) as pipe:
            for counter, value in zip(STATS_COUNTERS, counts, strict=True):
                pipe.incrby(self._keys.stats(counter), value)
            await pipe.execute()


def _experiments_fed(event: Event, index: dict[str, list[str]]) -> set[str]:
    """The experiments (keys) whose call folds the event: an exposure's own, else those its metric entries name."""
    if isinstance(event, Exposure):
        return {event.experiment}
    return {entry.split("|", 1)[0].split(PHASE_SEPARATOR, 1)[0] for entry in index.get(event.name, [])}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
