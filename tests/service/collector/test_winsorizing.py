"""Per-user caps of mean metrics: a user's total enters Σy and Σy² winsorized at the metric's cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from redis.asyncio import Redis

from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.registry import ExperimentRegistry
from splitstream.statistics import SampleMoments
from tests.service.collector.conftest import RunAggregator, exposed_user_record, records_seen, wait_for_stats

CAPPED_EXPERIMENT = "whale-proof-checkout"
CAP = 100.0
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def capped_experiment(redis: Redis, settings: CollectorSettings) -> Experiment:
    """"purchase" feeds revenue capped at 100, the same revenue uncapped, and a conversion whose cap is ignored."""
    created = Experiment(
        key=CAPPED_EXPERIMENT,
        variants=[Variant(key="control"), Variant(key="treatment")],
        metrics=[
            Metric(key="revenue", type=MetricType.MEAN, event="purchase", cap=CAP),
            Metric(key="raw_revenue", type=MetricType.MEAN, event="purchase"),
            Metric(key="converted", type=MetricType.BINOMIAL, event="purchase", cap=0.5),
        ],
        status=ExperimentStatus.RUNNING,
        salt="salt",
        created_at=datetime.now(UTC),
    )
    assert await ExperimentRegistry(redis, settings.redis_keys).create(created)
    return created


def exposed(user: str, variant: str) -> Exposure:
    return Exposure(type="exposure", event_id=f"exp-{user}", user_id=user, experiment=CAPPED_EXPERIMENT,
                    variant=variant, timestamp=T0)


def bought(user: str, event_id: str, value: float | None) -> TrackEvent:
    return TrackEvent(type="event", event_id=event_id, user_id=user, name="purchase", value=value,
                      timestamp=T0 + timedelta(minutes=1))


async def moments(redis: Redis, settings: CollectorSettings, variant: str, metric: str) -> SampleMoments:
    raw = await redis.hgetall(settings.redis_keys.variant_stats(CAPPED_EXPERIMENT, variant))
    fields = {key.decode() if isinstance(key, bytes) else key: float(value) for key, value in raw.items()}
    return SampleMoments(int(fields.get("users", 0)), fields.get(f"{metric}:sum", 0.0),
                         fields.get(f"{metric}:sumsq", 0.0))


async def user_total(redis: Redis, settings: CollectorSettings, user: str, metric: str) -> str | None:
    """The user's raw (uncapped) running total as stored."""
    return (await exposed_user_record(redis, settings, CAPPED_EXPERIMENT, user)).get(f"m:{metric}")


@pytest.mark.usefixtures("capped_experiment")
async def test_a_users_total_enters_the_sums_at_the_cap_and_later_purchases_past_it_change_nothing(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    await event_log.publish([
        exposed("ann", "treatment"), exposed("bob", "treatment"),
        bought("ann", "ann-1", 60.0), bought("ann", "ann-2", 70.0), bought("bob", "bob-1", 30.0),
    ])
    await run_aggregator(settings)
    await wait_for_stats(redis, settings, records_seen(5))

    # ann: min(130, 100) = 100 -> 100 and 10000; bob: 30 -> 30 and 900.
    assert await moments(redis, settings, "treatment", "revenue") == SampleMoments(2, 130.0, 10900.0)
    assert await moments(redis, settings, "treatment", "raw_revenue") == SampleMoments(2, 160.0, 17800.0)
    assert await moments(redis, settings, "treatment", "converted") == SampleMoments(2, 2.0, 2.0)
    assert await user_total(redis, settings, "ann", "revenue") == "130"

    await event_log.publish([bought("ann", "ann-3", 45.5)])
    stats = await wait_for_stats(redis, settings, records_seen(6))

    assert stats["applied"] == 6 and stats["overflow"] == 0
    assert await moments(redis, settings, "treatment", "revenue") == SampleMoments(2, 130.0, 10900.0)
    assert await moments(redis, settings, "treatment", "raw_revenue") == SampleMoments(
        2, 205.5, 175.5**2 + 30.0**2
    )
    assert await user_total(redis, settings, "ann", "revenue") == "175.5"


@pytest.mark.usefixtures("capped_experiment")
async def test_capped_sums_match_numpy_on_the_clipped_totals_with_refunds_and_late_exposures(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    rng = np.random.default_rng(20240501)
    purchases: dict[str, list[float | None]] = {
        "over-then-refunded": [60.0, 70.0, -50.0],  # 130 (capped at 100), then back under the cap at 80
        "negative": [-20.0, -15.0],  # refunds only: not capped from below
        "unit-purchases": [None, None],  # a purchase without a value counts 1
    }
    for index in range(40):
        amounts = rng.exponential(45.0, size=int(rng.integers(0, 5))) * rng.choice([1.0, -0.3], p=[0.85, 0.15])
        purchases[f"user-{index}"] = [float(amount) for amount in amounts]
    variant_of = {user: ("control", "treatment")[index % 2] for index, user in enumerate(purchases)}

    events: list[Exposure | TrackEvent] = []
    for index, (user, values) in enumerate(purchases.items()):
        bought_events = [bought(user, f"{user}-{n}", value) for n, value in enumerate(values)]
        # Every third user's purchases reach the consumer before the exposure: they are replayed from pending.
        exposure_first = index % 3 != 0
        events += [exposed(user, variant_of[user]), *bought_events] if exposure_first else [
            *bought_events, exposed(user, variant_of[user])]
    await event_log.publish(events)
    await run_aggregator(settings)
    stats = await wait_for_stats(redis, settings, records_seen(len(events)))

    totals = {user: sum(1.0 if value is None else value for value in values) for user, values in purchases.items()}
    assert stats["overflow"] == 0
    assert totals["over-then-refunded"] == 80.0
    assert max(totals.values()) > CAP and min(totals.values()) < 0  # the cap and negative totals are exercised
    for variant in ("control", "treatment"):
        raw = np.array([total for user, total in totals.items() if variant_of[user] == variant])
        clipped = np.minimum(raw, CAP)
        capped = await moments(redis, settings, variant, "revenue")
        uncapped = await moments(redis, settings, variant, "raw_revenue")
        assert capped.n == uncapped.n == raw.size
        assert capped.sum == pytest.approx(clipped.sum(), rel=1e-9, abs=1e-9)
        assert capped.sum_squares == pytest.approx(np.square(clipped).sum(), rel=1e-9)
        assert uncapped.sum == pytest.approx(raw.sum(), rel=1e-9, abs=1e-9)
        assert uncapped.sum_squares == pytest.approx(np.square(raw).sum(), rel=1e-9)
        assert not np.isclose(capped.sum_squares, uncapped.sum_squares)
