"""Segments: per dimension value, the same sufficient statistics as the variant's, from the attributes of each
user's first exposure (folded by the real consumer from the real topic into Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from redis.asyncio import Redis

from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.registry import ExperimentRegistry
from tests.service.collector.conftest import RunAggregator, records_seen, wait_for_stats

KEY = "segmented-titles"
T0 = datetime.now(UTC) - timedelta(hours=1)


def exposed(user: str, variant: str, **attributes: str | bool) -> Exposure:
    return Exposure(type="exposure", event_id=f"exp-{user}", user_id=user, experiment=KEY, variant=variant,
                    timestamp=T0, attributes=attributes)


def bought(user: str, index: int, value: float) -> TrackEvent:
    return TrackEvent(type="event", event_id=f"buy-{user}-{index}", user_id=user, name="purchase", value=value,
                      timestamp=T0 + timedelta(minutes=1 + index))


async def segment(
    redis: Redis, settings: CollectorSettings, dimension: str, value: str, variant: str
) -> dict[str, float]:
    key = f"{settings.redis_keys.experiment(KEY)}:seg:{dimension}:{value}:v:{variant}"
    return {name.decode(): float(raw) for name, raw in (await redis.hgetall(key)).items()}


async def test_each_value_of_a_dimension_keeps_the_variant_statistics_of_its_users(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    experiment = Experiment(
        key=KEY, variants=[Variant(key="control"), Variant(key="treatment")],
        metrics=[Metric(key="bought", type=MetricType.BINOMIAL, event="purchase"),
                 Metric(key="revenue", type=MetricType.MEAN, event="purchase")],
        segments=["channel", "is_new"], status=ExperimentStatus.RUNNING, salt=KEY, created_at=T0,
    )
    assert await ExperimentRegistry(redis, settings.redis_keys).create(experiment)
    channels = ["app", "web", "mini_program"] + [f"partner-{index}" for index in range(5)]
    events: list[Exposure | TrackEvent] = []
    purchases: dict[str, list[float]] = {}
    rng = np.random.default_rng(7)
    for index in range(40):
        user, variant, channel = f"u{index}", ("control", "treatment")[index % 2], channels[index % len(channels)]
        events.append(exposed(user, variant, channel=channel, is_new=index % 3 == 0, country="CN"))
        purchases[user] = [float(v) for v in rng.integers(1, 50, size=index % 4)]
        events.extend(bought(user, order, value) for order, value in enumerate(purchases[user]))
    events.append(exposed("no-channel", "control"))
    await event_log.publish(events)
    await run_aggregator(settings.model_copy(update={"max_segment_values": 5}))
    await wait_for_stats(redis, settings, records_seen(len(events)))

    # The first five values the consumer met keep their own segment (users arrive over four partitions, so which
    # five is not fixed); the others, the absent channel's "(none)" included, fold into "(other)".
    values = {raw.decode() for raw in await redis.smembers(f"{settings.redis_keys.experiment(KEY)}:segvals:channel")}
    kept = values - {"(other)"}
    assert len(kept) == 5 and "(other)" in values
    channel_of = {f"u{index}": channels[index % len(channels)] for index in range(40)} | {"no-channel": "(none)"}
    variant_of = {f"u{index}": ("control", "treatment")[index % 2] for index in range(40)} | {"no-channel": "control"}
    purchases["no-channel"] = []
    for value in values:
        for variant in ("control", "treatment"):
            members = [
                user for user, channel in channel_of.items()
                if variant_of[user] == variant and (channel if channel in kept else "(other)") == value
            ]
            totals = [sum(purchases[user]) for user in members]
            stats = await segment(redis, settings, "channel", value, variant)
            assert stats.get("users", 0) == len(members), (value, variant)
            assert stats.get("bought:sum", 0) == sum(1 for user in members if purchases[user])
            assert np.isclose(stats.get("revenue:sum", 0), sum(totals))
            assert np.isclose(stats.get("revenue:sumsq", 0), sum(total * total for total in totals))
    new_users = sum(1 for index in range(40) if index % 3 == 0 and index % 2 == 1)
    assert (await segment(redis, settings, "is_new", "true", "treatment"))["users"] == new_users
    # The country was not declared as a segment: nothing is kept by it.
    assert not await redis.exists(f"{settings.redis_keys.experiment(KEY)}:segvals:country")
