"""Synthetic traffic for one experiment, and the statistics the fold must reach, computed independently with numpy.

Values are whole numbers, so every Σy and Σy² is an integer well below 2**53: Redis's float sums and numpy's are
then exact in any order of addition, and the comparison can be equality, where one event counted twice shows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.keys import RedisKeys, sum_field, sum_squares_field

EXPERIMENT = "exactly-once"
VARIANTS = ("control", "treatment")
REVENUE_CAP = 150.0


def the_experiment() -> Experiment:
    """Purchases feed a conversion, a revenue total and a winsorized revenue; page views (no value) a count."""
    return Experiment(
        key=EXPERIMENT,
        variants=[Variant(key=key) for key in VARIANTS],
        metrics=[
            Metric(key="converted", type=MetricType.BINOMIAL, event="purchase"),
            Metric(key="revenue", type=MetricType.MEAN, event="purchase"),
            Metric(key="capped_revenue", type=MetricType.MEAN, event="purchase", cap=REVENUE_CAP),
            Metric(key="pageviews", type=MetricType.MEAN, event="pageview"),
        ],
        status=ExperimentStatus.RUNNING,
        salt="salt",
        created_at=datetime.now(UTC),
    )


Event = Exposure | TrackEvent


def traffic(users: int, *, seed: int, id_prefix: str) -> list[Event]:
    """About 4.4 records per user, shuffled (an event may arrive before its user's exposure, as in life).

    9 users in 10 are exposed once; each user makes Poisson(1.5) purchases of 1..200 and Poisson(2) page views,
    from 10 minutes before to an hour after the exposure, so some happen before it and must not count.
    """
    rng = np.random.default_rng(seed)
    base = datetime.now(UTC) - timedelta(hours=2)
    records: list[Event] = []

    def at(offset_ms: int) -> datetime:
        return base + timedelta(milliseconds=offset_ms)

    for user_index in range(users):
        user = f"{id_prefix}-user-{user_index}"
        exposed_at = int(rng.integers(0, 3_600_000))
        if rng.random() < 0.9:
            variant = VARIANTS[int(rng.integers(0, len(VARIANTS)))]
            records.append(Exposure(
                type="exposure", event_id=f"{id_prefix}-x-{user_index}", user_id=user, experiment=EXPERIMENT,
                variant=variant, timestamp=at(exposed_at),
            ))
        for order in range(int(rng.poisson(1.5))):
            records.append(TrackEvent(
                type="event", event_id=f"{id_prefix}-p-{user_index}-{order}", user_id=user, name="purchase",
                value=float(rng.integers(1, 201)), timestamp=at(exposed_at + int(rng.integers(-600_000, 3_600_000))),
            ))
        for order in range(int(rng.poisson(2.0))):
            records.append(TrackEvent(
                type="event", event_id=f"{id_prefix}-v-{user_index}-{order}", user_id=user, name="pageview",
                timestamp=at(exposed_at + int(rng.integers(-600_000, 3_600_000))),
            ))
    return [records[int(i)] for i in rng.permutation(len(records))]


VariantStatistics = dict[str, float]
"""``users`` and ``{metric}:sum`` / ``{metric}:sumsq`` of one variant, as in the Redis hash."""


def expected_statistics(records: list[Event], experiment: Experiment) -> dict[str, VariantStatistics]:
    """Per variant: exposed users n, and per metric Σy and Σy² over them, where a user's y is

    - binomial: 1 if the user has at least one event of the metric's name at or after the first exposure, else 0;
    - mean: T, the sum of those events' values (1 when absent), winsorized as min(T, cap) when the metric has a cap.
    """
    user_ids = sorted({record.user_id for record in records})
    index = {user: position for position, user in enumerate(user_ids)}
    variant_of = np.full(len(user_ids), -1)
    exposed_at = np.zeros(len(user_ids), dtype=np.int64)
    variant_keys = experiment.variant_keys()
    for record in records:
        if isinstance(record, Exposure):
            assert variant_of[index[record.user_id]] == -1, "the generator exposes each user once"
            variant_of[index[record.user_id]] = variant_keys.index(record.variant)
            exposed_at[index[record.user_id]] = record.timestamp_ms

    expected: dict[str, VariantStatistics] = {
        key: {"users": float(np.count_nonzero(variant_of == k))} for k, key in enumerate(variant_keys)
    }
    for metric in experiment.metrics:
        y = _per_user_values(records, metric, index, variant_of, exposed_at)
        for k, key in enumerate(variant_keys):
            in_variant = y[variant_of == k]
            expected[key][sum_field(metric.key)] = float(in_variant.sum())
            expected[key][sum_squares_field(metric.key)] = float(np.square(in_variant).sum())
    return expected


def _per_user_values(
    records: list[Event], metric: Metric, index: dict[str, int], variant_of: NDArray[np.int_],
    exposed_at: NDArray[np.int64],
) -> NDArray[np.float64]:
    events = [r for r in records if isinstance(r, TrackEvent) and r.name == metric.event]
    users = np.array([index[e.user_id] for e in events], dtype=np.int64)
    happened_at = np.array([e.timestamp_ms for e in events], dtype=np.int64)
    values = np.array([1.0 if e.value is None else e.value for e in events], dtype=np.float64)
    counts = (variant_of[users] >= 0) & (happened_at >= exposed_at[users])
    if metric.type is MetricType.BINOMIAL:
        converted = np.bincount(users[counts], minlength=len(index)) > 0
        return converted.astype(np.float64)
    totals = np.bincount(users[counts], weights=values[counts], minlength=len(index)).astype(np.float64)
    return totals if metric.cap is None else np.minimum(totals, metric.cap)


async def stored_statistics(
    redis: Redis | RedisCluster, keys: RedisKeys, experiment: Experiment
) -> dict[str, VariantStatistics]:
    """The variants' hashes as the fold left them, every field the expectation names (0 when never written)."""
    stored: dict[str, VariantStatistics] = {}
    for variant in experiment.variant_keys():
        raw = await redis.hgetall(keys.variant_stats(experiment.key, variant))
        fields = {(name.decode() if isinstance(name, bytes) else name): float(value) for name, value in raw.items()}
        names = ["users", *(f(m.key) for m in experiment.metrics for f in (sum_field, sum_squares_field))]
        stored[variant] = {name: fields.get(name, 0.0) for name in names}
    return stored
