"""A workload for the fold in three steps, and what a fold left in Redis, to compare the steps with the one-call fold
(tests/service/collector/test_fold_steps.py on one Redis, tests/integration/test_cluster_fold.py on a cluster)."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from services.collector.adapters.fold import FoldLimits, FoldMode, StatisticsFolder
from services.collector.adapters.fold_steps import RecordId, SteppedFolder
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.keys import USER_RECORD_SEPARATOR, RedisKeys

LIMITS = FoldLimits(dedup_ttl_seconds=604_800, pending_ttl_seconds=3600, pending_max_events=200,
                    lateness_seconds=3600, max_segment_values=100)
NOW = datetime.now(UTC)
BATCH = 100


def experiments() -> list[Experiment]:
    """Two experiments fed by the same events: conversions, revenue and views with CUPED, by channel."""
    return [
        Experiment(
            key=key, variants=[Variant(key="control"), Variant(key="treatment")],
            metrics=[Metric(key="conv", type=MetricType.BINOMIAL, event="purchase"),
                     Metric(key="rev", type=MetricType.MEAN, event="purchase"),
                     Metric(key="views", type=MetricType.MEAN, event="view")],
            segments=["channel"], status=ExperimentStatus.RUNNING, salt=key, created_at=NOW - timedelta(days=20),
        )
        for key in ("first", "second")
    ]


def workload(seed: int) -> list[Exposure | TrackEvent]:
    """Exposures and events of 80 users in random order: events before and after exposures, some days back (CUPED
    covariates), some resent (the same event id), some feeding no metric."""
    rng = random.Random(seed)
    events: list[Exposure | TrackEvent] = []
    for index in range(600):
        user = f"u{rng.randrange(80)}"
        if rng.random() < 0.25:
            events.append(Exposure(
                type="exposure", event_id=f"x{index}", user_id=user, experiment=rng.choice(["first", "second"]),
                variant=rng.choice(["control", "treatment"]), timestamp=NOW - timedelta(minutes=rng.randrange(30)),
                attributes={"channel": rng.choice(["app", "web"])},
            ))
        else:
            event_id = f"t{index}" if rng.random() > 0.1 else f"t{max(0, index - 3)}"
            at = NOW - timedelta(days=rng.choice([0, 0, 0, 1, 3, 5]), minutes=rng.randrange(60))
            events.append(TrackEvent(type="event", event_id=event_id, user_id=user, timestamp=at,
                                     name=rng.choice(["purchase", "view", "other"]),
                                     value=rng.choice([None, 9.5, 20.0])))
    return events


class CrashingFolder(SteppedFolder):
    """Fails at ``crash_at`` (the n-th call of that mode) once Redis ran it, as a consumer killed there would."""

    def __init__(self, redis: Redis | RedisCluster, keys: RedisKeys, crash_at: tuple[FoldMode, int]) -> None:
        super().__init__(redis, keys, LIMITS)
        self._crash_at: tuple[FoldMode, int] | None = crash_at
        self._calls: dict[str, int] = {}

    async def _run(self, place: str, mode: FoldMode, experiment: str, index: dict[str, list[str]],
                   fields: list[str | bytes]) -> Any:
        self._calls[mode] = self._calls.get(mode, 0) + 1
        done = await super()._run(place, mode, experiment, index, fields)
        if self._crash_at == (mode, self._calls[mode]):
            self._crash_at = None
            raise ConnectionError("killed after Redis ran the call, before its answer was read")
        return done


async def contents(redis: Redis | RedisCluster, keys: RedisKeys) -> dict[str, Any]:
    """Every key the fold wrote under ``keys`` but the counters, with its value; a user record without its last
    record applied (``o``, which the one-call fold does not keep), a pending entry without its record."""
    found: dict[str, Any] = {}
    async for raw in redis.scan_iter(match=f"{keys.prefix}:*"):
        key = raw.decode(errors="replace")
        kind = (await redis.type(raw)).decode()
        if key.startswith(keys.stats("")):
            continue
        if kind == "hash":
            found[key] = {field: b"".join(_without_record(value)) if ":users:" in key else value
                          for field, value in (await redis.hgetall(raw)).items()}
        elif kind == "list":
            found[key] = [b"|".join(entry.split(b"|")[:4]) for entry in await redis.lrange(raw, 0, -1)]
        elif kind == "set":
            found[key] = sorted(await redis.smembers(raw))
        else:
            found[key] = await redis.get(raw)
    return {key.removeprefix(keys.prefix): value for key, value in found.items()}


def _without_record(value: bytes) -> list[bytes]:
    separator = USER_RECORD_SEPARATOR.encode()
    kept = [entry for entry in value.split(separator) if not entry.startswith(b"o=")]
    return [separator.join(kept)]


async def fold_in_batches(
    folder: StatisticsFolder | SteppedFolder, events: Sequence[Exposure | TrackEvent],
    after_batch: Callable[[int], Awaitable[None]] | None = None,
) -> int:
    """Fold ``events`` in batches of ``BATCH``, each failed batch again (as the consumer does, which committed none
    of it); ``after_batch`` is told the number of each batch folded. Returns the number of failed attempts."""
    failed = 0
    arrivals = [ARRIVED + index for index in range(len(events))]
    records = [RecordId(0, offset) for offset in range(len(events))]
    for number, start in enumerate(range(0, len(events), BATCH)):
        end = start + BATCH
        if isinstance(folder, StatisticsFolder):
            await folder.apply(events[start:end], arrivals[start:end])
        else:
            for attempt in range(1, 6):
                try:
                    await folder.apply(events[start:end], arrivals[start:end], sources=records[start:end])
                    break
                except (ConnectionError, RedisError):
                    failed += 1
                    if attempt == 5:
                        raise
        if after_batch is not None:
            await after_batch(number)
    return failed


ARRIVED = int(time.time() * 1000)


