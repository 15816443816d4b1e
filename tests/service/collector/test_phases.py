"""A new phase starts the statistics from zero: exposures fold into their phase's scope, and events feed only the
experiment's current phase (folded by the real consumer from the real topic into Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.keys import stats_scope
from splitstream.registry import ExperimentRegistry
from tests.service.collector.conftest import RunAggregator, records_seen, wait_for_stats

KEY = "phased-pricing"
T0 = datetime.now(UTC) - timedelta(hours=1)


def exposed(user: str, variant: str, phase: int) -> Exposure:
    return Exposure(type="exposure", event_id=f"exp-{user}-{phase}", user_id=user, experiment=KEY, variant=variant,
                    phase=phase, timestamp=T0 + timedelta(minutes=10 * (phase - 1)))


def bought(user: str, event_id: str, value: float, minutes: int) -> TrackEvent:
    return TrackEvent(type="event", event_id=event_id, user_id=user, name="purchase", value=value,
                      timestamp=T0 + timedelta(minutes=minutes))


async def totals(redis: Redis, settings: CollectorSettings, phase: int, variant: str) -> tuple[int, float]:
    raw = await redis.hgetall(settings.redis_keys.variant_stats(stats_scope(KEY, phase), variant))
    fields = {key.decode(): float(value) for key, value in raw.items()}
    return int(fields.get("users", 0)), fields.get("revenue:sum", 0.0)


async def test_each_phase_has_its_own_statistics_and_events_feed_the_current_one(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    assert stats_scope(KEY, 1) == KEY and stats_scope(KEY, 2) == f"{KEY}~2"
    registry = ExperimentRegistry(redis, settings.redis_keys)
    first = Experiment(
        key=KEY, variants=[Variant(key="control"), Variant(key="treatment")],
        metrics=[Metric(key="revenue", type=MetricType.MEAN, event="purchase")],
        status=ExperimentStatus.RUNNING, salt=KEY, created_at=T0,
    )
    assert await registry.create(first)
    await run_aggregator(settings)
    # ann's first purchase precedes her phase-2 exposure, so replaying her pending events does not move it.
    before = [exposed("ann", "control", 1), bought("ann", "ann-1", 10.0, 2)]
    await event_log.publish(before)
    await wait_for_stats(redis, settings, records_seen(len(before)))

    second = first.model_copy(update={"phase": 2, "version": 2})
    await registry.replace(second, first)
    after: list[Exposure | TrackEvent] = [
        exposed("ann", "treatment", 2), exposed("bob", "control", 2),
        bought("ann", "ann-2", 5.0, 11), bought("bob", "bob-2", 7.0, 11),
        exposed("cat", "treatment", 1),  # a phase-1 exposure arriving late still belongs to phase 1
    ]
    await event_log.publish(after)
    await wait_for_stats(redis, settings, records_seen(len(before) + len(after)))

    assert await totals(redis, settings, 1, "control") == (1, 10.0)
    assert await totals(redis, settings, 1, "treatment") == (1, 0.0)
    assert await totals(redis, settings, 2, "treatment") == (1, 5.0)
    assert await totals(redis, settings, 2, "control") == (1, 7.0)
