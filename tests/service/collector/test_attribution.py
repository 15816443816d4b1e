"""Attribution windows (exposure_ts <= event_ts < exposure_ts + window) and the lateness bound on events that
arrive before their user's exposure, folded by the real consumer from the real topic into Redis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.collector.aggregator import Aggregator
from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent, encode
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.registry import ExperimentRegistry
from splitstream.statistics import SampleMoments
from tests.service.collector.conftest import RunAggregator, records_seen, wait_for_stats

WINDOWED_EXPERIMENT = "one-day-checkout"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ARRIVED = datetime(2024, 5, 3, 9, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


@pytest.fixture
async def windowed_experiment(redis: Redis, settings: CollectorSettings) -> Experiment:
    """"purchase" feeds a conversion and a revenue counted within 24 hours of exposure, and a revenue without window."""
    created = Experiment(
        key=WINDOWED_EXPERIMENT,
        variants=[Variant(key="control"), Variant(key="treatment")],
        metrics=[
            Metric(key="converted_1d", type=MetricType.BINOMIAL, event="purchase", conversion_window_hours=24),
            Metric(key="revenue_1d", type=MetricType.MEAN, event="purchase", conversion_window_hours=24, cap=1000),
            Metric(key="revenue", type=MetricType.MEAN, event="purchase"),
        ],
        status=ExperimentStatus.RUNNING,
        salt="salt",
        created_at=datetime.now(UTC),
    )
    assert await ExperimentRegistry(redis, settings.redis_keys).create(created)
    return created


def exposed(user: str, arrived: datetime | None = ARRIVED) -> Exposure:
    return Exposure(type="exposure", event_id=f"exp-{user}", user_id=user, experiment=WINDOWED_EXPERIMENT,
                    variant="treatment", timestamp=T0, received_at=arrived)


def bought(user: str, event_id: str, value: float, at: datetime, arrived: datetime | None = ARRIVED) -> TrackEvent:
    return TrackEvent(type="event", event_id=event_id, user_id=user, name="purchase", value=value, timestamp=at,
                      received_at=arrived)


async def moments(redis: Redis, settings: CollectorSettings, metric: str) -> SampleMoments:
    raw = await redis.hgetall(settings.redis_keys.variant_stats(WINDOWED_EXPERIMENT, "treatment"))
    fields = {key.decode() if isinstance(key, bytes) else key: float(value) for key, value in raw.items()}
    return SampleMoments(int(fields.get("users", 0)), fields.get(f"{metric}:sum", 0.0),
                         fields.get(f"{metric}:sumsq", 0.0))


@pytest.mark.usefixtures("windowed_experiment")
async def test_an_event_counts_inside_the_window_and_not_at_or_after_its_end_whichever_arrives_first(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    just_inside = T0 + DAY - timedelta(milliseconds=1)
    events: list[Exposure | TrackEvent] = [
        # Exposure first: the events are folded directly.
        exposed("ann"), bought("ann", "ann-in", 10.0, just_inside), bought("ann", "ann-end", 20.0, T0 + DAY),
        exposed("bob"), bought("bob", "bob-late", 40.0, T0 + DAY + timedelta(hours=1)),
        # Events first (arrived 30 minutes before the exposure): replayed from the pending list.
        bought("cat", "cat-in", 3.0, T0 + timedelta(hours=2), ARRIVED - timedelta(minutes=30)),
        bought("cat", "cat-end", 5.0, T0 + DAY, ARRIVED - timedelta(minutes=30)),
        exposed("cat"),
    ]
    await event_log.publish(events)
    await run_aggregator(settings)
    stats = await wait_for_stats(redis, settings, records_seen(len(events)))

    assert stats["applied"] == len(events)
    # Windowed: ann 10, bob nothing, cat 3.
    assert await moments(redis, settings, "converted_1d") == SampleMoments(3, 2.0, 2.0)
    assert await moments(redis, settings, "revenue_1d") == SampleMoments(3, 13.0, 109.0)
    # Without a window every event at or after the exposure counts: ann 30, bob 40, cat 8.
    assert await moments(redis, settings, "revenue") == SampleMoments(3, 78.0, 900.0 + 1600.0 + 64.0)


@pytest.mark.usefixtures("windowed_experiment")
async def test_an_event_arriving_before_its_exposure_counts_only_within_the_lateness_bound(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    assert settings.lateness_seconds == 3600
    in_window = T0 + timedelta(minutes=5)
    events: list[Exposure | TrackEvent] = [
        bought("dan", "dan-30m", 7.0, in_window, ARRIVED - timedelta(minutes=30)),
        bought("eve", "eve-2h", 9.0, in_window, ARRIVED - timedelta(hours=2)),
        bought("eve", "eve-59m", 2.0, in_window, ARRIVED - timedelta(minutes=59)),
        exposed("dan"), exposed("eve"),
    ]
    await event_log.publish(events)
    await run_aggregator(settings)
    await wait_for_stats(redis, settings, records_seen(len(events)))

    # dan 7; eve only the purchase that arrived 59 minutes before her exposure: 2.
    assert await moments(redis, settings, "revenue") == SampleMoments(2, 9.0, 53.0)
    assert await moments(redis, settings, "revenue_1d") == SampleMoments(2, 9.0, 53.0)
    assert await moments(redis, settings, "converted_1d") == SampleMoments(2, 2.0, 2.0)


@pytest.mark.usefixtures("windowed_experiment")
async def test_without_received_at_the_record_timestamp_is_the_arrival_time(
    settings: CollectorSettings, redis: Redis
) -> None:
    arrived_ms = int(ARRIVED.timestamp() * 1000)
    records = [
        _Record(encode(bought("fay", "fay-30m", 4.0, T0, arrived=None)), 0, arrived_ms - 30 * 60_000),
        _Record(encode(bought("gus", "gus-2h", 6.0, T0, arrived=None)), 1, arrived_ms - 2 * 3_600_000),
        _Record(encode(exposed("fay", arrived=None)), 2, arrived_ms),
        _Record(encode(exposed("gus", arrived=None)), 3, arrived_ms),
    ]

    outcome = await Aggregator(settings, redis).process_batch(records)

    assert outcome.applied == 4
    assert await moments(redis, settings, "revenue") == SampleMoments(2, 4.0, 16.0)


@pytest.mark.usefixtures("windowed_experiment")
async def test_a_pending_entry_written_without_an_arrival_time_uses_its_event_time(
    settings: CollectorSettings, redis: Redis
) -> None:
    at_ms = int((T0 + timedelta(minutes=1)).timestamp() * 1000)
    for user in ("hal", "ida"):  # the layout before arrival times were kept
        await redis.rpush(settings.redis_keys.legacy_pending(user), f"purchase|5.0|{at_ms}")

    await Aggregator(settings, redis).process_batch([
        _Record(encode(exposed("hal", arrived=T0 + timedelta(minutes=30))), 0, 0),
        _Record(encode(exposed("ida", arrived=T0 + timedelta(hours=3))), 1, 0),
    ])

    # hal's exposure arrived 29 minutes after the purchase happened, ida's 2 h 59 min: only hal's counts.
    assert await moments(redis, settings, "revenue") == SampleMoments(2, 5.0, 25.0)


@dataclass(frozen=True)
class _Record:
    value: bytes | None
    offset: int
    timestamp: int
    topic: str = "in-memory"
    partition: int = 0
    key: bytes | None = None
