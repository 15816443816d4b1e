"""Held-out users' exposures fold into the experiment's ``(holdout)`` arm like a variant's; other unknown arms stay
orphans."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.collector.aggregator import statistics_folder
from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import HOLDOUT_ARM

AT = datetime.now(UTC)


def _exposure(user: str, arm: str) -> Exposure:
    return Exposure(type="exposure", event_id=f"exposure-{user}", user_id=user, experiment="checkout-button",
                    variant=arm, timestamp=AT)


def _purchase(user: str, value: float) -> TrackEvent:
    return TrackEvent(type="event", event_id=f"purchase-{user}", user_id=user, name="purchase", value=value,
                      timestamp=AT + timedelta(seconds=1))


@pytest.mark.usefixtures("experiment")
async def test_held_out_users_are_counted_in_the_holdout_arm(settings: CollectorSettings, redis: Redis) -> None:
    folder = statistics_folder(settings, redis, settings.redis_keys)
    events = [_exposure("held", HOLDOUT_ARM), _exposure("treated", "treatment"), _exposure("gone", "retired"),
              _purchase("held", 12.5), _purchase("treated", 20.0)]
    outcome = await folder.apply(events, [time.time_ns() // 1_000_000] * len(events))

    assert outcome.orphan_exposures == 1  # "retired" is no variant of the experiment
    held = await redis.hgetall(settings.redis_keys.variant_stats("checkout-button", HOLDOUT_ARM))
    assert {key.decode(): float(value) for key, value in held.items()} == {
        "users": 1.0, "converted:sum": 1.0, "converted:sumsq": 1.0, "revenue:sum": 12.5, "revenue:sumsq": 156.25,
    }


def test_an_exposure_names_a_variant_key_or_the_holdout_arm_only() -> None:
    with pytest.raises(ValueError, match="variant"):
        _exposure("odd", "(other)")
