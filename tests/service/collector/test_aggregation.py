"""The consumer folding the real topic into Redis: counts, deduplication, late exposures, poison, restarts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from services.collector.aggregator import Aggregator
from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent, encode
from splitstream.experiment import Experiment
from splitstream.statistics import SampleMoments
from tests.conftest import auth
from tests.service.collector.conftest import (
    EXPERIMENT,
    RunAggregator,
    exposed_user_record,
    read_topic,
    records_seen,
    wait_for_stats,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def exposed(user: str, variant: str, at: datetime = T0, event_id: str | None = None) -> Exposure:
    return Exposure(type="exposure", event_id=event_id or f"exp-{user}", user_id=user, experiment=EXPERIMENT,
                    variant=variant, timestamp=at)


def bought(
    user: str, event_id: str, value: float | None = None, at: datetime = T0 + timedelta(minutes=1)
) -> TrackEvent:
    return TrackEvent(type="event", event_id=event_id, user_id=user, name="purchase", value=value, timestamp=at)


@dataclass(frozen=True)
class VariantStats:
    users: int
    converted: SampleMoments
    revenue: SampleMoments


async def variant_stats(redis: Redis, settings: CollectorSettings, variant: str) -> VariantStats:
    raw = await redis.hgetall(settings.redis_keys.variant_stats(EXPERIMENT, variant))
    fields = {key.decode() if isinstance(key, bytes) else key: float(value) for key, value in raw.items()}
    users = int(fields.get("users", 0))

    def moments(metric: str) -> SampleMoments:
        return SampleMoments(users, fields.get(f"{metric}:sum", 0.0), fields.get(f"{metric}:sumsq", 0.0))

    return VariantStats(users, moments("converted"), moments("revenue"))


@pytest.mark.usefixtures("experiment")
async def test_each_exposed_user_converts_once_and_resent_events_count_nothing(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    users = {f"user-{i}": ("control", "treatment")[i % 2] for i in range(20)}
    exposures: list[Exposure | TrackEvent] = [exposed(user, variant) for user, variant in users.items()]
    purchases: list[Exposure | TrackEvent] = [bought(user, f"buy-{user}-{n}") for user in users for n in range(2)]
    await event_log.publish(exposures + purchases)
    await run_aggregator(settings)
    await wait_for_stats(redis, settings, records_seen(60))

    await event_log.publish(exposures + purchases)
    stats = await wait_for_stats(redis, settings, records_seen(120))

    assert stats == {"applied": 60, "duplicates": 60, "orphan_exposures": 0, "overflow": 0, "poison": 0}
    for variant in ("control", "treatment"):
        folded = await variant_stats(redis, settings, variant)
        assert folded.users == 10
        assert folded.converted == SampleMoments(10, 10.0, 10.0)


@pytest.mark.usefixtures("experiment")
async def test_mean_metric_holds_sums_over_users_of_their_totals(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    values: dict[str, list[float | None]] = {"ann": [2.5, 4.0], "bob": [None], "cat": [1.25, None, 10.0], "dan": []}
    events: list[Exposure | TrackEvent] = [exposed(user, "treatment") for user in values]
    events += [bought(user, f"{user}-{n}", value) for user, user_values in values.items()
               for n, value in enumerate(user_values)]
    await event_log.publish(events)
    await run_aggregator(settings)
    await wait_for_stats(redis, settings, records_seen(len(events)))

    totals = [sum(1.0 if v is None else v for v in user_values) for user_values in values.values()]
    folded = await variant_stats(redis, settings, "treatment")
    assert totals == [6.5, 1.0, 12.25, 0.0]
    assert folded.users == 4
    assert folded.revenue.sum == pytest.approx(sum(totals))
    assert folded.revenue.sum_squares == pytest.approx(sum(t * t for t in totals))
    assert folded.converted == SampleMoments(4, 3.0, 3.0)
    ann = await exposed_user_record(redis, settings, EXPERIMENT, "ann")
    assert ann == {"v": "treatment", "t": str(int(T0.timestamp() * 1000)), "m:converted": "1", "m:revenue": "6.5"}


@pytest.mark.usefixtures("experiment")
async def test_only_events_at_or_after_the_exposure_count_even_when_they_arrive_first(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    early, late = T0 - timedelta(seconds=1), T0 + timedelta(seconds=1)
    # Exposed first: the earlier event does not count, the one at the exposure instant does.
    await event_log.publish([exposed("ann", "control"), bought("ann", "ann-early", 5.0, at=early),
                             bought("ann", "ann-same", 7.0, at=T0)])
    # Events first: they wait in the experiment's pending list of the user until the exposure arrives.
    await event_log.publish([bought("bob", "bob-early", 100.0, at=early), bought("bob", "bob-late", 3.0, at=late)])
    await event_log.publish([exposed("bob", "control")])
    await run_aggregator(settings)
    await wait_for_stats(redis, settings, records_seen(6))

    folded = await variant_stats(redis, settings, "control")
    assert folded.users == 2
    assert folded.converted == SampleMoments(2, 2.0, 2.0)
    assert folded.revenue == SampleMoments(2, 10.0, 58.0)
    assert await redis.exists(settings.redis_keys.pending(EXPERIMENT, "bob")) == 0  # replayed: never read again


@pytest.mark.usefixtures("experiment")
async def test_poison_records_are_counted_and_the_consumer_keeps_going(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for value in (b"not json", b'{"type": "event", "event_id": "x"}', None):
            await producer.send_and_wait(settings.events_topic, value, key=b"ann")
    finally:
        await producer.stop()
    await run_aggregator(settings)
    await wait_for_stats(redis, settings, lambda stats: stats["poison"] == 3)

    await event_log.publish([exposed("ann", "control"), bought("ann", "ann-1")])
    stats = await wait_for_stats(redis, settings, records_seen(5))

    assert stats["poison"] == 3 and stats["applied"] == 2
    assert (await variant_stats(redis, settings, "control")).converted == SampleMoments(1, 1.0, 1.0)


@pytest.mark.usefixtures("experiment")
async def test_a_batch_applied_but_not_committed_is_not_counted_twice_after_a_restart(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    events: list[Exposure | TrackEvent] = [exposed(f"u{i}", "treatment") for i in range(8)]
    events += [bought(f"u{i}", f"b{i}", 2.0) for i in range(8)]
    await event_log.publish(events)
    records = await read_topic(settings, len(events))
    crashed = Aggregator(settings, redis)
    first = await crashed.process_batch(records)
    again = await crashed.process_batch(records)  # the same delivery, applied twice

    await run_aggregator(settings)  # the group never committed: everything is delivered again
    stats = await wait_for_stats(redis, settings, records_seen(3 * len(events)))

    assert (first.applied, first.duplicates, again.applied, again.duplicates) == (16, 0, 0, 16)
    assert stats["applied"] == 16 and stats["duplicates"] == 32
    folded = await variant_stats(redis, settings, "treatment")
    assert folded.users == 8
    assert folded.revenue == SampleMoments(8, 16.0, 32.0)


async def test_committed_offsets_are_not_read_again_by_the_next_consumer(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator,
    experiment: Experiment,
) -> None:
    await event_log.publish([exposed("ann", "control")])
    first = await run_aggregator(settings)
    await wait_for_stats(redis, settings, records_seen(1))
    await first.stop()

    await event_log.publish([bought("ann", "ann-1")])
    await run_aggregator(settings)
    stats = await wait_for_stats(redis, settings, records_seen(2))

    assert stats["duplicates"] == 0 and stats["applied"] == 2


@pytest.mark.usefixtures("experiment")
async def test_exposures_to_unknown_experiments_or_variants_are_orphans_and_the_first_exposure_wins(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    unknown_experiment = exposed("ann", "control").model_copy(update={"experiment": "nope", "event_id": "e1"})
    await event_log.publish([
        unknown_experiment,
        exposed("ann", "purple", event_id="e2"),
        exposed("bob", "control", event_id="e3"),
        exposed("bob", "treatment", at=T0 - timedelta(hours=1), event_id="e4"),
    ])
    await run_aggregator(settings)
    stats = await wait_for_stats(redis, settings, records_seen(4))

    assert stats["orphan_exposures"] == 2
    assert await exposed_user_record(redis, settings, EXPERIMENT, "ann") == {}
    assert await exposed_user_record(redis, settings, "nope", "ann") == {}
    assert (await exposed_user_record(redis, settings, EXPERIMENT, "bob"))["v"] == "control"
    assert (await variant_stats(redis, settings, "control")).users == 1
    assert (await variant_stats(redis, settings, "treatment")).users == 0


@pytest.mark.usefixtures("experiment")
async def test_a_sum_that_would_overflow_is_skipped_and_counted_without_stalling_the_batch(
    settings: CollectorSettings, redis: Redis,
) -> None:
    aggregator = Aggregator(settings, redis)
    events: list[Exposure | TrackEvent] = [
        exposed("ann", "control"), bought("ann", "huge", 1e200), bought("ann", "fine", 4.0)
    ]
    records = [_Record(encode(event), offset) for offset, event in enumerate(events)]

    outcome = await aggregator.process_batch(records)

    assert (outcome.applied, outcome.overflow) == (3, 1)
    assert (await variant_stats(redis, settings, "control")).revenue == SampleMoments(1, 4.0, 16.0)


@pytest.mark.usefixtures("experiment")  # "purchase" feeds its metrics, and ann is not exposed: her events wait
async def test_pending_events_are_capped_and_expire(
    settings: CollectorSettings, redis: Redis,
) -> None:
    capped = settings.model_copy(update={"pending_max_events": 3, "pending_ttl_seconds": 60, "lateness_seconds": 60})
    arrived_at = int(datetime.now(UTC).timestamp() * 1000)
    records = [_Record(encode(bought("ann", f"b{i}", float(i))), i, timestamp=arrived_at + i) for i in range(5)]

    await Aggregator(capped, redis).process_batch(records)

    pending = settings.redis_keys.pending(EXPERIMENT, "ann")
    happened_at = bought("ann", "b0").timestamp_ms
    assert await redis.lrange(pending, 0, -1) == [
        f"purchase|{float(i)}|{happened_at}|{arrived_at + i}".encode() for i in (4, 3, 2)
    ]
    assert 0 < await redis.ttl(pending) <= 60


@pytest.mark.usefixtures("experiment")
async def test_events_sent_through_the_collector_api_end_up_folded(
    settings: CollectorSettings, redis: Redis, client: httpx.AsyncClient, run_aggregator: RunAggregator
) -> None:
    # Through the API the timestamps must be recent: the collector refuses events older than max_past_skew.
    now = datetime.now(UTC)
    batch = [exposed(f"u{i}", "control", at=now).model_dump(mode="json") for i in range(3)]
    batch += [bought(f"u{i}", f"b{i}", 1.5, at=now).model_dump(mode="json") for i in range(3)]
    answer = await client.post("/v1/events", json={"events": batch}, headers=auth("ingest"))
    assert answer.status_code == 202
    await run_aggregator(settings)
    await wait_for_stats(redis, settings, records_seen(6))

    folded = await variant_stats(redis, settings, "control")
    assert folded.converted == SampleMoments(3, 3.0, 3.0)
    assert folded.revenue == SampleMoments(3, 4.5, 6.75)


@dataclass(frozen=True)
class _Record:
    value: bytes | None
    offset: int
    topic: str = "in-memory"
    timestamp: int = -1  # none: the time of decoding stands for the arrival
    partition: int = 0
    key: bytes | None = None
