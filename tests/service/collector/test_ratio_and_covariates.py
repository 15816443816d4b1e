"""Ratio metrics and CUPED covariates folded in the stream, checked against numpy on the raw per-user data.

Ratio: per user m = Σ numerator values and d = count (or Σ) of denominator events after exposure; the variant keeps
n, Σm, Σm², Σd, Σd², Σm·d. CUPED: per user x = the metric over the lookback's whole days before the exposure's day
(binomial: any event; mean: the capped total); the variant keeps Σx, Σx², Σx·y.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.collector.aggregator import statistics_folder
from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import (
    Aggregate,
    AnalysisPlan,
    Experiment,
    ExperimentStatus,
    Metric,
    MetricType,
    Variant,
)
from splitstream.keys import DAILY_TOTALS_FIELD_BYTES, daily_totals_field
from splitstream.registry import ExperimentRegistry
from splitstream.statistics import CovariateMoments, RatioMoments

KEY = "price-points"
VARIANTS = ("control", "treatment")
CAP = 150.0
LOOKBACK_DAYS = 7
DAY = timedelta(days=1)
NOW = datetime.now(UTC)
# The exposure's day starts at midnight UTC; events are placed relative to it, whatever the time of the run.
EXPOSURE_DAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
EXPOSED_AT = EXPOSURE_DAY + timedelta(minutes=30)


@pytest.fixture
async def experiment(redis: Redis, settings: CollectorSettings) -> Experiment:
    created = Experiment(
        key=KEY,
        variants=[Variant(key=key) for key in VARIANTS],
        metrics=[
            Metric(key="ctr", type=MetricType.RATIO, event="click", denominator_event="impression"),
            Metric(key="order_value", type=MetricType.RATIO, event="purchase", denominator_event="purchase"),
            Metric(key="spend_per_impression", type=MetricType.RATIO, event="purchase",
                   denominator_event="impression", denominator_aggregate=Aggregate.SUM),
            Metric(key="converted", type=MetricType.BINOMIAL, event="purchase"),
            Metric(key="revenue", type=MetricType.MEAN, event="purchase", cap=CAP),
        ],
        analysis=AnalysisPlan(cuped_lookback_days=LOOKBACK_DAYS),
        status=ExperimentStatus.RUNNING,
        salt="salt",
        created_at=NOW,
    )
    assert await ExperimentRegistry(redis, settings.redis_keys).create(created)
    return created


@dataclass
class Truth:
    """Per user and variant, the raw values each statistic is a sum over."""

    users: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {v: [] for v in VARIANTS})


def _event(user: str, index: int, name: str, at: datetime, value: float | None) -> TrackEvent:
    return TrackEvent(type="event", event_id=f"{user}-{name}-{index}", user_id=user, name=name, value=value,
                      timestamp=at)


def simulate(seed: int, count: int, unrelated_before: int = 0) -> tuple[list[Exposure | TrackEvent], Truth]:
    """Events in arrival order (pre-period, exposure, after it, a late pre-period one) and the true per-user values;
    ``unrelated_before`` page views (they feed no metric) before the exposure grow each user's state."""
    rng = random.Random(seed)
    events: list[Exposure | TrackEvent] = []
    truth = Truth()
    for number in range(count):
        user, variant = f"u{number}", VARIANTS[number % 2]
        index = 0
        spend_before = 0.0
        bought_before = False
        for _ in range(rng.randint(0, 4)):
            days_back = rng.randint(1, LOOKBACK_DAYS + 5)  # some fall outside the lookback and must not count
            value = round(rng.uniform(5, 120), 2)
            at = EXPOSURE_DAY - days_back * DAY + timedelta(hours=12)
            events.append(_event(user, index := index + 1, "purchase", at, value))
            if days_back <= LOOKBACK_DAYS:
                spend_before += value
                bought_before = True
        for _ in range(unrelated_before):
            events.append(_event(user, index := index + 1, "page_view", EXPOSURE_DAY - DAY, None))
        # Earlier on the exposure's own day: neither in the pre-period nor attributed (before the exposure).
        events.append(_event(user, index := index + 1, "purchase", EXPOSURE_DAY + timedelta(minutes=5), 999.0))
        events.append(Exposure(type="exposure", event_id=f"{user}-exposure", user_id=user, experiment=KEY,
                               variant=variant, timestamp=EXPOSED_AT))
        impressions = rng.randint(0, 5)
        clicks = rng.randint(0, impressions)
        purchases = [round(rng.uniform(1, 90), 2) for _ in range(rng.randint(0, 3))]
        after = EXPOSED_AT + timedelta(minutes=1)
        impression_values = []
        for _ in range(impressions):
            impression_values.append(rng.choice([None, 2.0, 0.5]))
            events.append(_event(user, index := index + 1, "impression", after, impression_values[-1]))
        for _ in range(clicks):
            events.append(_event(user, index := index + 1, "click", after, None))
        for value in purchases:
            events.append(_event(user, index := index + 1, "purchase", after, value))
        # Dated in the pre-period but arriving after the exposure was folded: x is frozen at the exposure.
        events.append(_event(user, index := index + 1, "purchase", EXPOSURE_DAY - DAY, 50.0))
        truth.users[variant].append({
            "clicks": clicks, "impressions": impressions,
            "impression_total": sum(1.0 if v is None else v for v in impression_values),
            "spend": sum(purchases), "orders": len(purchases),
            "converted": 1.0 if purchases else 0.0, "revenue": min(sum(purchases), CAP),
            "x_converted": 1.0 if bought_before else 0.0, "x_revenue": min(spend_before, CAP),
        })
    return events, truth


def _fields(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {key.decode(): float(value) for key, value in raw.items()}


def _ratio(stats: dict[str, float], metric: str) -> RatioMoments:
    return RatioMoments(int(stats["users"]), *(stats.get(f"{metric}:{part}", 0.0)
                                              for part in ("sum", "sumsq", "dsum", "dsumsq", "md")))


def _covariate(stats: dict[str, float], metric: str) -> CovariateMoments:
    return CovariateMoments(int(stats["users"]), *(stats.get(f"{metric}:{part}", 0.0)
                                                  for part in ("sum", "sumsq", "xsum", "xsumsq", "xy")))


def _close(actual: RatioMoments | CovariateMoments, expected: RatioMoments | CovariateMoments) -> None:
    assert actual.n == expected.n
    for name in actual.__slots__:
        assert getattr(actual, name) == pytest.approx(getattr(expected, name), rel=1e-12, abs=1e-9), name


@pytest.mark.usefixtures("experiment")
@pytest.mark.parametrize("unrelated_before", [0, 30], ids=["small-user-states", "user-states-read-field-by-field"])
async def test_ratio_and_covariate_sums_match_the_raw_per_user_values(
    settings: CollectorSettings, redis: Redis, unrelated_before: int
) -> None:
    """A user state of up to twice the lookback's fields is read whole at the exposure, a larger one field by field
    (fold.lua lookback_totals): both give the same covariates."""
    events, truth = simulate(seed=11, count=80, unrelated_before=unrelated_before)
    folder = statistics_folder(settings, redis, settings.redis_keys)
    arrived = time.time_ns() // 1_000_000
    for start in range(0, len(events), 97):  # several batches, a user's events spread over two at times
        batch = events[start:start + 97]
        await folder.apply(batch, [arrived] * len(batch))

    for variant in VARIANTS:
        stats = _fields(await redis.hgetall(settings.redis_keys.variant_stats(KEY, variant)))
        users = truth.users[variant]
        column = {name: [user[name] for user in users] for name in users[0]}
        _close(_ratio(stats, "ctr"), RatioMoments.of(column["clicks"], column["impressions"]))
        _close(_ratio(stats, "order_value"), RatioMoments.of(column["spend"], column["orders"]))
        _close(_ratio(stats, "spend_per_impression"), RatioMoments.of(column["spend"], column["impression_total"]))
        _close(_covariate(stats, "converted"), CovariateMoments.of(column["converted"], column["x_converted"]))
        _close(_covariate(stats, "revenue"), CovariateMoments.of(column["revenue"], column["x_revenue"]))
        assert sum(column["x_converted"]) > 5, "the simulation must give CUPED pre-period data to use"


@pytest.mark.usefixtures("experiment")
async def test_a_replayed_batch_changes_neither_ratio_nor_covariate_sums(
    settings: CollectorSettings, redis: Redis
) -> None:
    events, _ = simulate(seed=5, count=20)
    folder = statistics_folder(settings, redis, settings.redis_keys)
    arrived = [time.time_ns() // 1_000_000] * len(events)
    await folder.apply(events, arrived)
    keys = [settings.redis_keys.variant_stats(KEY, variant) for variant in VARIANTS]
    before = [await redis.hgetall(key) for key in keys]
    outcome = await folder.apply(events, arrived)
    assert outcome.duplicates == len(events) and outcome.applied == 0
    assert [await redis.hgetall(key) for key in keys] == before


async def test_daily_totals_keep_only_days_a_lookback_can_reach(
    settings: CollectorSettings, redis: Redis, experiment: Experiment
) -> None:
    """A purchase 40 days old is not kept (the longest lookback is 30 days); the user's day hash expires."""
    folder = statistics_folder(settings, redis, settings.redis_keys)
    arrived = time.time_ns() // 1_000_000
    await folder.apply([_event("old", 1, "purchase", NOW - 40 * DAY, 10.0),
                        _event("old", 2, "purchase", NOW - 2 * DAY, 20.0),
                        _event("old", 3, "unmeasured", NOW - 2 * DAY, 20.0)], [arrived] * 3)
    state = settings.redis_keys.user_state("old")
    stored = {key: value.decode() for key, value in (await redis.hgetall(state)).items()}
    totals = {key: value for key, value in stored.items() if len(key) == DAILY_TOTALS_FIELD_BYTES}
    day = int((NOW - 2 * DAY).timestamp() // 86400)
    assert totals == {daily_totals_field("purchase", day): "20"}
    assert len(stored) == 4  # and the three dedup marks
    assert 31 * 86400 < await redis.ttl(state) <= 32 * 86400


async def test_daily_totals_are_a_field_per_event_and_day_that_a_sweep_drops_once_past_reach(
    settings: CollectorSettings, redis: Redis, experiment: Experiment
) -> None:
    folder = statistics_folder(settings, redis, settings.redis_keys)
    arrived = time.time_ns() // 1_000_000
    today = int(NOW.timestamp() // 86400)
    days_back = [3, 1, 3, 2, 1, 5]  # out of order, as late events come
    await folder.apply([_event("mixed", index, "purchase", NOW - back * DAY, 1.5 * index)
                        for index, back in enumerate(days_back, start=1)], [arrived] * len(days_back))
    state = settings.redis_keys.user_state("mixed")
    purchase = daily_totals_field("purchase", today)[:4]

    async def totals_by_day() -> dict[int, float]:
        stored = await redis.hgetall(state)
        return {int.from_bytes(field[4:]) - today: float(value) for field, value in stored.items()
                if len(field) == DAILY_TOTALS_FIELD_BYTES and field.startswith(purchase)}

    assert await totals_by_day() == {-1: 10.5, -2: 6.0, -3: 6.0, -5: 9.0}

    # 29 days later, 64 purchases of a new day: the state's next sweep drops the days no lookback can reach any more
    # (before today - 2), and the new day's total has every one of them, summed in order.
    later = arrived + 29 * 86_400_000
    events = [_event("mixed", index, "purchase", NOW + 29 * DAY, 0.1) for index in range(7, 7 + 64)]
    await folder.apply(events, [later] * len(events))
    expected = 0.0
    for _ in events:
        expected += 0.1
    assert await totals_by_day() == {29: expected, -1: 10.5, -2: 6.0}
