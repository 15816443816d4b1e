"""The aggregation consumer's Prometheus metrics: events by outcome and the lag of each partition it commits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent
from tests.service.collector.conftest import (
    EXPERIMENT,
    RunAggregator,
    metric_sample,
    read_topic,
    records_seen,
    wait_for_stats,
)

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OUTCOMES = ("applied", "duplicate", "orphan", "dead_letter")


def lag_of(partition: int) -> float | None:
    return REGISTRY.get_sample_value("splitstream_consumer_lag", {"partition": str(partition)})


@pytest.mark.usefixtures("experiment")
async def test_events_are_counted_by_outcome_and_the_lag_drops_to_zero_once_caught_up(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    before = {outcome: metric_sample("splitstream_consumer_events_total", outcome=outcome) for outcome in OUTCOMES}
    events: list[Exposure | TrackEvent] = [
        Exposure(type="exposure", event_id="e1", user_id="ann", experiment=EXPERIMENT, variant="control", timestamp=AT),
        Exposure(type="exposure", event_id="e2", user_id="bob", experiment=EXPERIMENT, variant="purple", timestamp=AT),
        TrackEvent(type="event", event_id="e3", user_id="ann", name="purchase", value=2.0, timestamp=AT),
    ]
    await event_log.publish(events)
    await event_log.publish(events)  # a client's resend: every event a second time
    partitions = {record.partition for record in await read_topic(settings, 6)}

    running = await run_aggregator(settings)
    await wait_for_stats(redis, settings, records_seen(6))
    deadline = time.monotonic() + 20
    while any(lag_of(partition) != 0 for partition in partitions):  # set after the commit, which follows the fold
        assert time.monotonic() < deadline, {partition: lag_of(partition) for partition in partitions}
        await asyncio.sleep(0.05)

    counted = {
        outcome: metric_sample("splitstream_consumer_events_total", outcome=outcome) - before[outcome]
        for outcome in OUTCOMES
    }
    assert counted == {"applied": 3, "duplicate": 3, "orphan": 1, "dead_letter": 0}

    await running.stop()
    assert all(lag_of(partition) is None for partition in partitions)  # a stopped consumer reports no lag
