"""However a stream of events is cut into fold calls, every statistic is stored byte for byte the same: each call
adds to its copy of a sum in double arithmetic, event by event in order, and writes the sum once, in text that reads
back exactly."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from services.collector.adapters.fold import StatisticsFolder
from services.collector.aggregator import statistics_folder
from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.keys import RedisKeys
from splitstream.registry import ExperimentRegistry

KEY = "batching"
T0 = datetime.now(UTC) - timedelta(hours=1)


def the_experiment() -> Experiment:
    return Experiment(
        key=KEY, variants=[Variant(key="control"), Variant(key="treatment")],
        metrics=[Metric(key="bought", type=MetricType.BINOMIAL, event="purchase"),
                 Metric(key="revenue", type=MetricType.MEAN, event="purchase"),
                 Metric(key="capped", type=MetricType.MEAN, event="purchase", cap=60.0),
                 Metric(key="visits", type=MetricType.MEAN, event="visit")],
        segments=["channel"], status=ExperimentStatus.RUNNING, salt=KEY, created_at=T0,
    )


def stream(seed: int) -> list[Exposure | TrackEvent]:
    """Whole and fractional values mixed within users, fields and segments: a whole-number field turns fractional
    part-way (revenue), others stay whole (bought, visits)."""
    rng = random.Random(seed)
    events: list[Exposure | TrackEvent] = []
    for index in range(60):
        user = f"u{index}"
        events.append(Exposure(type="exposure", event_id=f"x-{user}", user_id=user, experiment=KEY,
                               variant=("control", "treatment")[index % 2], timestamp=T0,
                               attributes={"channel": rng.choice(["app", "web"])}))
        for order in range(rng.randint(0, 4)):
            value = rng.choice([10.0, 25.0, 0.1, 19.99, 3.0])
            events.append(TrackEvent(type="event", event_id=f"p-{user}-{order}", user_id=user, name="purchase",
                                     value=value, timestamp=T0 + timedelta(minutes=1 + order)))
        for order in range(rng.randint(0, 3)):
            events.append(TrackEvent(type="event", event_id=f"v-{user}-{order}", user_id=user, name="visit",
                                     timestamp=T0 + timedelta(minutes=1 + order)))
    rng.shuffle(events[60:])  # exposures first, then events out of user order
    return events


async def _statistics(redis: Redis, keys: RedisKeys) -> dict[str, dict[bytes, bytes]]:
    names = [raw.decode() async for raw in redis.scan_iter(match=f"{keys.experiment(KEY)}:*")]
    wanted = [name for name in names if ":v:" in name]
    return {name.removeprefix(keys.prefix): await redis.hgetall(name) for name in wanted}


async def _fresh_folder(settings: CollectorSettings, redis: Redis, run: str) -> tuple[RedisKeys, StatisticsFolder]:
    """A prefix of its own for ``run``, holding the experiment, and a folder writing under it."""
    keys = RedisKeys(f"{settings.redis_keys.prefix}-{run}")
    assert await ExperimentRegistry(redis, keys).create(the_experiment())
    return keys, statistics_folder(settings, redis, keys)


async def test_one_call_and_one_call_per_event_store_the_same_bytes(
    settings: CollectorSettings, redis: Redis
) -> None:
    events = stream(seed=3)
    arrived = time.time_ns() // 1_000_000
    stored = []
    for run, size in (("whole", len(events)), ("each", 1), ("sevens", 7)):
        keys, folder = await _fresh_folder(settings, redis, run)
        for start in range(0, len(events), size):
            batch = events[start:start + size]
            await folder.apply(batch, [arrived] * len(batch))
        stored.append(await _statistics(redis, keys))

    whole, each, sevens = stored
    assert len(whole) == 6  # two variants, and two channels of each
    assert whole == each == sevens
    control = whole[":exp:{batching}:v:control"]
    assert b"." in control[b"revenue:sum"] and b"." not in control[b"bought:sum"]  # both kinds were exercised


async def test_a_fold_call_written_ahead_survives_redis_losing_its_scripts(
    settings: CollectorSettings, redis: Redis
) -> None:
    """Redis answers NOSCRIPT when its scripts are gone (a restart, SCRIPT FLUSH) and runs nothing; the folder then
    loads the script and calls again, so the batch lands once."""
    events = stream(seed=4)
    arrived = time.time_ns() // 1_000_000
    halves = (events[:100], events[100:])
    stored = []
    for run in ("scripts-kept", "scripts-lost"):
        keys, folder = await _fresh_folder(settings, redis, run)
        outcomes = []
        for half in halves:
            if run == "scripts-lost":
                await redis.script_flush()
            pending = await folder.send(folder.call(half, [arrived] * len(half)))
            outcomes.append(await pending.outcome())
        assert [outcome.applied for outcome in outcomes] == [len(half) for half in halves]
        assert await redis.script_exists(folder.script.sha) == [True]
        stored.append(await _statistics(redis, keys))

    assert stored[0] == stored[1] and len(stored[0]) == 6
