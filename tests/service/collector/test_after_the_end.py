"""A stopped or shipped experiment's statistics freeze: exposures and events dated from its end on are not counted,
whenever they arrive (clients with a stale definition go on sending them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.collector.aggregator import statistics_folder
from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus
from splitstream.registry import ExperimentRegistry

MS = timedelta(milliseconds=1)
# Ends whose date the fold parses from the definition: a plain day, the last instant of a leap day, a century's.
ENDS = [datetime(2026, 11, 23, 12, 30, 15, 250_000, tzinfo=UTC), datetime(2024, 2, 29, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(2000, 3, 1, tzinfo=UTC)]


def _exposed(user: str, at: datetime) -> Exposure:
    return Exposure(type="exposure", event_id=f"x-{user}", user_id=user, experiment="checkout-button",
                    variant="treatment", timestamp=at)


def _bought(user: str, at: datetime, value: float) -> TrackEvent:
    return TrackEvent(type="event", event_id=f"b-{user}-{value}", user_id=user, name="purchase", value=value,
                      timestamp=at)


@pytest.mark.parametrize(("status", "ended_at"), [(ExperimentStatus.STOPPED, ENDS[0]),
                                                 (ExperimentStatus.SHIPPED, ENDS[0]),
                                                 (ExperimentStatus.STOPPED, ENDS[1]),
                                                 (ExperimentStatus.STOPPED, ENDS[2])])
async def test_nothing_dated_from_the_end_on_is_counted(
    settings: CollectorSettings, redis: Redis, experiment: Experiment, status: ExperimentStatus, ended_at: datetime
) -> None:
    ended = experiment.model_copy(update={
        "status": status, "ended_at": ended_at, "shipped_variant": "treatment" if status is ExperimentStatus.SHIPPED
        else None,
    })
    await ExperimentRegistry(redis, settings.redis_keys).replace(ended, experiment)
    events = [
        _exposed("before", ended_at - 10 * MS), _bought("before", ended_at - MS, 10.0),
        _bought("before", ended_at, 20.0), _exposed("after", ended_at), _bought("after", ended_at + MS, 30.0),
    ]
    outcome = await statistics_folder(settings, redis, settings.redis_keys).apply(
        events, [time.time_ns() // 1_000_000] * len(events)
    )

    stats = await redis.hgetall(settings.redis_keys.variant_stats("checkout-button", "treatment"))
    assert (outcome.applied, outcome.orphan_exposures) == (5, 1)
    assert (int(stats[b"users"]), float(stats[b"revenue:sum"]), float(stats[b"converted:sum"])) == (1, 10.0, 1.0)
