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

On a cluster, "decide" and "record" run once per node, for the users whose slots it holds (their events in batch
order), and "experiments" on the node of the experiment's slot (``script_places``). The steps of a batch run one
after the other: a failed call fails the batch, which the consumer folds again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster

from services.collector.adapters.fold import (
    FOLD_SCRIPT,
    STATS_COUNTERS,
    FoldLimits,
    FoldMode,
    FoldOutcome,
    script_fields,
    script_header,
)
from services.collector.adapters.script_places import ClusterNodes, ScriptPlaces, SingleServer
from splitstream.events import Exposure, TrackEvent
from splitstream.keys import PHASE_SEPARATOR, RedisKeys
from splitstream.redis_client import AnyRedis

Event = Exposure | TrackEvent


class RecordSource(Protocol):
    """Where an event came from (aiokafka's ``ConsumerRecord`` has it)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RecordId:
    """A Kafka record's partition and offset."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class SteppedCall:
    """A batch to fold in steps, as :meth:`SteppedFolder.call` built it."""

    events: Sequence[Event]
    arrivals_ms: Sequence[int]
    sources: Sequence[RecordSource]
    poison: int


class SteppedPending:
    """A batch whose steps are running; read the outcome with :meth:`outcome`, exactly once."""

    def __init__(self, task: asyncio.Task[FoldOutcome]) -> None:
        self._task = task

    async def outcome(self) -> FoldOutcome:
        return await self._task


class SteppedFolder:
    def __init__(self, redis: AnyRedis, keys: RedisKeys, limits: FoldLimits) -> None:
        self._redis = redis
        self._keys = keys
        self._limits = limits
        self._places: ScriptPlaces = (
            ClusterNodes(redis, FOLD_SCRIPT) if isinstance(redis, RedisCluster) else SingleServer(redis, FOLD_SCRIPT)
        )

    def call(
        self, events: Sequence[Event], arrivals_ms: Sequence[int], *, poison: int = 0,
        sources: Sequence[RecordSource] | None = None,
    ) -> SteppedCall:
        """The batch :meth:`apply` folds; ``sources`` (the record of each event) are required."""
        if sources is None or len(sources) != len(events):
            raise ValueError("a stepped fold needs the Kafka record of every event")
        return SteppedCall(events, arrivals_ms, sources, poison)

    async def send(self, call: SteppedCall) -> SteppedPending:
        """Start folding ``call`` now; the steps run while the caller does other work."""
        return SteppedPending(asyncio.create_task(self._apply(call)))

    async def apply(
        self, events: Sequence[Event], arrivals_ms: Sequence[int], *, poison: int = 0,
        sources: Sequence[RecordSource] | None = None,
    ) -> FoldOutcome:
        """Fold ``events`` (which arrived at ``arrivals_ms`` from the records ``sources``, index for index) in the
        three steps; the counters are added up last."""
        return await self._apply(self.call(events, arrivals_ms, poison=poison, sources=sources))

    async def _apply(self, call: SteppedCall) -> FoldOutcome:
        events = call.events
        index = await self._metric_index(events)
        fields = [script_fields(event, arrived) for event, arrived in zip(events, call.arrivals_ms, strict=True)]
        by_place = self._by_user_place(events)
        firsts: dict[int, bytes] = {}  # the position of every first delivery, with an exposure's daily totals
        applied = duplicates = 0
        for place, positions in by_place.items():
            decided = await self._run(place, "decide", "", index, [part for at in positions for part in fields[at]])
            applied, duplicates = applied + int(decided[0]), duplicates + int(decided[1])
            snapshots = iter(decided[5])
            for at, decision in zip(positions, decided[4].decode(), strict=True):
                if decision == "1":
                    firsts[at] = next(snapshots) if isinstance(events[at], Exposure) else b""
        fed: dict[str, list[str | bytes]] = {}
        for at in sorted(firsts):
            source = call.sources[at]
            for experiment in _experiments_fed(events[at], index):
                fed.setdefault(experiment, []).extend(
                    (*fields[at], f"{source.partition}:{source.offset}", firsts[at])
                )
        orphans = overflow = 0
        for experiment, experiment_fields in sorted(fed.items()):
            place = self._places.place_of(self._keys.experiment(experiment))
            folded = await self._run(place, "experiments", experiment, index, experiment_fields)
            orphans, overflow = orphans + int(folded[2]), overflow + int(folded[3])
        for place, positions in by_place.items():
            await self._run(place, "record", "", index, [part for at in positions for part in fields[at]])
        outcome = FoldOutcome(applied, duplicates, orphans, overflow, call.poison)
        await self._count(outcome)
        return outcome

    def _by_user_place(self, events: Sequence[Event]) -> dict[str, list[int]]:
        """The positions of ``events`` by the place of their users' states, in batch order."""
        places: dict[str, str] = {}
        by_place: dict[str, list[int]] = {}
        for at, event in enumerate(events):
            place = places.get(event.user_id)
            if place is None:
                place = places[event.user_id] = self._places.place_of(self._keys.user_state(event.user_id))
            by_place.setdefault(place, []).append(at)
        return by_place

    async def _metric_index(self, events: Sequence[Event]) -> dict[str, list[str]]:
        names = sorted({event.name for event in events if isinstance(event, TrackEvent)})
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.smembers(self._keys.event_metrics(name))
            members = await pipe.execute()
        return {name: sorted(_text(entry) for entry in entries) for name, entries in zip(names, members, strict=True)}

    async def _run(
        self, place: str, mode: FoldMode, experiment: str, index: dict[str, list[str]], fields: list[str | bytes]
    ) -> Any:
        header = script_header(self._keys.prefix, poison=0, mode=mode, experiment=experiment, index=index,
                               **self._limits)
        return await self._places.run(place, [*header, *fields])

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
