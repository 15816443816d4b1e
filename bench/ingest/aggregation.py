"""Aggregation and memory: events/s one consumer folds into Redis, and Redis bytes per tracked (user, metric).

A fresh experiment with ``METRICS`` metrics gets ``USERS`` exposures, each followed by one event per metric,
published straight to Kafka with :class:`splitstream.eventlog.EventLog`. The running consumer folds them; the
benchmark polls its ``{p}:stats:*`` counters. The producer shares the machine's cores with the consumer while it
publishes, so the consumer's own rate is read after the last acknowledgement, while it drains the backlog alone.

Memory is INFO ``used_memory`` after the fold minus before it, over USERS × METRICS; ``MEMORY USAGE`` splits it
into the exposed-user buckets (per experiment: what the analysis needs of each user; all of them), the user states
(a hash per user of dedup marks, each kept 7 days, and daily totals for CUPED) and the experiment's pending lists
(a user's recent events that wait for a late exposure), both on a sample of users.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from bench.ingest.stack import ConsumerProgress, DevStack, redis_cpu_seconds
from bench.process_cpu import CpuMeter, CpuUse
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent
from splitstream.keys import USER_BUCKETS

USERS = 40_000
METRICS = 4
PUBLISH_BATCH = 500
PUBLISHERS = 8
MEMORY_SAMPLE_USERS = 200
VARIANTS = ("control", "treatment")
MEAN_VALUE = 12.5
DRAIN_TIMEOUT_SECONDS = 120


def experiment_spec(key: str, run: str, metrics: int = METRICS) -> dict[str, Any]:
    """Half binomial, half mean metrics, each fed by an event name of its own."""
    return {
        "key": key,
        "variants": [{"key": variant} for variant in VARIANTS],  # an equal split
        "metrics": [
            {"key": f"m{index}", "type": "binomial" if index % 2 == 0 else "mean", "event": metric_event(run, index)}
            for index in range(metrics)
        ],
    }


def metric_event(run: str, index: int) -> str:
    return f"bench.{run}.m{index}"


def user_id(run: str, index: int) -> str:
    return f"{run}-a{index}"


def build_events(experiment: str, run: str) -> list[Exposure | TrackEvent]:
    """Per user: the exposure, then one event per metric at the same instant (events count from exposure on)."""
    now = datetime.now(UTC)
    events: list[Exposure | TrackEvent] = []
    for index in range(USERS):
        user = user_id(run, index)
        events.append(Exposure(type="exposure", event_id=f"{user}-x", user_id=user, timestamp=now,
                               experiment=experiment, variant=VARIANTS[index % len(VARIANTS)]))
        events.extend(
            TrackEvent(type="event", event_id=f"{user}-e{metric}", user_id=user, timestamp=now,
                       name=metric_event(run, metric), value=MEAN_VALUE if metric % 2 else None)
            for metric in range(METRICS)
        )
    return events


@dataclass(frozen=True, slots=True)
class MemoryReading:
    used: int
    """INFO ``used_memory``."""
    key_tables: int
    """MEMORY STATS ``overhead.hashtable.main`` + ``.expires`` over the databases: the keyspace's own entries and
    bucket arrays; an array doubles when its key count passes a power of two."""


@dataclass(frozen=True, slots=True)
class AggregationResult:
    events: int
    publish_seconds: float
    backlog_at_publish_end: int
    drain_seconds: float
    memory_before: MemoryReading
    memory_after: MemoryReading
    sampled_bytes: dict[str, float]
    """Mean ``MEMORY USAGE`` per (user, metric) of each kind of key, over the sampled users."""
    consumer_cpu: CpuUse | None
    """The consumer's CPU from the first publish to the last fold."""
    redis_cpu: CpuUse
    """Redis's over the same span: the fold script runs there."""

    @property
    def consumer_alone_per_second(self) -> float:
        return self.backlog_at_publish_end / self.drain_seconds

    @property
    def end_to_end_per_second(self) -> float:
        return self.events / (self.publish_seconds + self.drain_seconds)

    @property
    def bytes_per_user_metric(self) -> float:
        return (self.memory_after.used - self.memory_before.used) / (USERS * METRICS)

    @property
    def key_table_bytes_per_user_metric(self) -> float:
        return (self.memory_after.key_tables - self.memory_before.key_tables) / (USERS * METRICS)


async def read_memory(redis: Redis) -> MemoryReading:
    info = await redis.info("memory")
    stats = await redis.memory_stats()
    key_tables = sum(
        int(tables.get("overhead.hashtable.main", 0)) + int(tables.get("overhead.hashtable.expires", 0))
        for name, tables in stats.items() if str(name).startswith("db.") and isinstance(tables, dict)
    )
    return MemoryReading(int(info["used_memory"]), key_tables)


async def steady_memory(redis: Redis, *, interval_seconds: float = 0.25, attempts: int = 20) -> MemoryReading:
    """The reading once ``used_memory`` holds still: a key table that doubled keeps its old bucket array until
    the incremental rehash is over (about a second when idle), which an early reading would count twice."""
    last = await read_memory(redis)
    for _ in range(attempts):
        await asyncio.sleep(interval_seconds)
        current = await read_memory(redis)
        if current.used == last.used:
            return current
        last = current
    return last


async def _publish(stack: DevStack, events: list[Exposure | TrackEvent]) -> None:
    log = EventLog(stack.kafka_bootstrap, stack.topic)
    await log.start()
    try:
        # Chunks of whole users keep each exposure ahead of its user's events (one user, one partition).
        size = PUBLISH_BATCH - PUBLISH_BATCH % (METRICS + 1)
        chunks = [events[start:start + size] for start in range(0, len(events), size)]
        queue: asyncio.Queue[list[Exposure | TrackEvent]] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)

        async def publisher() -> None:
            while not queue.empty():
                await log.publish(queue.get_nowait())

        await asyncio.gather(*(publisher() for _ in range(PUBLISHERS)))
    finally:
        await log.stop()


async def _sampled_bytes(stack: DevStack, redis: Redis, experiment: str, run: str) -> dict[str, float]:
    """Per (user, metric): the experiment's exposed-user buckets whole (every user of the run is in them), and the
    user states and pending lists of a sample of users."""
    keys = stack.keys
    users = [user_id(run, index) for index in range(0, USERS, max(1, USERS // MEMORY_SAMPLE_USERS))]
    kinds: dict[str, tuple[list[str], int]] = {
        "exposed-user buckets": ([keys.exposed_users(experiment, bucket) for bucket in range(USER_BUCKETS)], USERS),
        "user states": ([keys.user_state(user) for user in users], len(users)),
        "pending lists": ([keys.pending(experiment, user) for user in users], len(users)),
    }
    async with redis.pipeline(transaction=False) as pipe:
        for names, _ in kinds.values():
            for name in names:
                pipe.memory_usage(name, samples=0)
        usages = iter(await pipe.execute())
    per_pair: dict[str, float] = {}
    for kind, (names, users_covered) in kinds.items():
        total = sum(int(next(usages) or 0) for _ in names)
        per_pair[kind] = total / (users_covered * METRICS)
    return per_pair


async def measure_aggregation(
    stack: DevStack, redis: Redis, experiment: str, run: str, consumer_pid: int | None
) -> AggregationResult:
    events = build_events(experiment, run)
    progress = ConsumerProgress(redis, stack.keys)
    start = await progress.processed()
    memory_before = await steady_memory(redis)
    meter = CpuMeter(consumer_pid)
    meter.start()
    redis_cpu_before = await redis_cpu_seconds(redis)
    began = time.perf_counter()
    await _publish(stack, events)
    published = time.perf_counter()
    backlog = start + len(events) - await progress.processed()
    async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS):
        done = await progress.wait_for(start + len(events))
    consumer_cpu = meter.stop(done - began, len(events))
    redis_cpu = CpuUse(await redis_cpu_seconds(redis) - redis_cpu_before, done - began, len(events))
    memory_after = await steady_memory(redis)
    return AggregationResult(
        events=len(events),
        publish_seconds=published - began,
        backlog_at_publish_end=backlog,
        drain_seconds=done - published,
        memory_before=memory_before,
        memory_after=memory_after,
        sampled_bytes=await _sampled_bytes(stack, redis, experiment, run),
        consumer_cpu=consumer_cpu,
        redis_cpu=redis_cpu,
    )
