"""What the fold keeps per user beyond the statistics: pending events only while an experiment they feed still
waits for the user's exposure; daily totals only of events that feed binomial or mean metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.collector.aggregator import statistics_folder
from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.keys import DAILY_TOTALS_FIELD_BYTES, DEDUP_MARK_BYTES, dedup_mark
from splitstream.registry import ExperimentRegistry

AT = datetime.now(UTC)


def _exposed(user: str) -> Exposure:
    return Exposure(type="exposure", event_id=f"x-{user}", user_id=user, experiment="checkout-button",
                    variant="treatment", timestamp=AT)


def _event(user: str, name: str, index: int = 1) -> TrackEvent:
    return TrackEvent(type="event", event_id=f"{name}-{user}-{index}", user_id=user, name=name, value=3.0,
                      timestamp=AT + timedelta(seconds=index))


@pytest.mark.usefixtures("experiment")
async def test_pending_events_are_kept_only_while_an_experiment_waits_for_the_exposure(
    settings: CollectorSettings, redis: Redis
) -> None:
    folder = statistics_folder(settings, redis, settings.redis_keys)
    keys = settings.redis_keys
    events = [_exposed("in"), _event("in", "purchase"), _event("early", "purchase"), _event("any", "page_view")]
    arrived = time.time_ns() // 1_000_000
    await folder.apply(events, [arrived] * len(events))

    assert await redis.exists(keys.pending("checkout-button", "in")) == 0  # counted at once, nothing to replay
    assert await redis.llen(keys.pending("checkout-button", "early")) == 1  # waits for its exposure
    assert await redis.exists(keys.pending("checkout-button", "any")) == 0  # feeds no metric
    # Nor is it in the user's daily totals: the state holds its dedup mark alone, kept for the dedup window.
    day = b"%d" % (arrived // 86_400_000 % 128)  # the day of arrival modulo 128: one byte in a listpack
    assert await redis.hgetall(keys.user_state("any")) == {dedup_mark("page_view-any-1"): day}
    assert 0 < await redis.ttl(keys.user_state("any")) <= settings.dedup_ttl_seconds

    await folder.apply([_exposed("early")], [time.time_ns() // 1_000_000])
    stats = await redis.hgetall(keys.variant_stats("checkout-button", "treatment"))
    assert float(stats[b"revenue:sum"]) == 6.0  # "in"'s purchase and the replayed one of "early"


@pytest.mark.usefixtures("experiment")
async def test_an_event_waits_only_in_the_experiments_that_have_not_seen_the_user_and_each_replays_it_once(
    settings: CollectorSettings, redis: Redis
) -> None:
    later = Experiment(
        key="later-checkout", variants=[Variant(key="control"), Variant(key="treatment")],
        metrics=[Metric(key="revenue", type=MetricType.MEAN, event="purchase")], status=ExperimentStatus.RUNNING,
        salt="later", created_at=AT,
    )
    assert await ExperimentRegistry(redis, settings.redis_keys).create(later)
    folder = statistics_folder(settings, redis, settings.redis_keys)
    keys = settings.redis_keys
    arrived = time.time_ns() // 1_000_000
    await folder.apply([_exposed("ann"), _event("ann", "purchase")], [arrived, arrived])

    assert await redis.exists(keys.pending("checkout-button", "ann")) == 0  # folded there at once
    assert await redis.llen(keys.pending("later-checkout", "ann")) == 1
    late_exposure = Exposure(type="exposure", event_id="x-ann-later", user_id="ann", experiment="later-checkout",
                             variant="control", timestamp=AT)
    await folder.apply([late_exposure, _event("ann", "purchase", index=2)], [arrived + 1, arrived + 2])

    assert await redis.exists(keys.pending("later-checkout", "ann")) == 0  # replayed, then dropped
    revenue = {
        key: float((await redis.hgetall(keys.variant_stats(key, variant)))[b"revenue:sum"])
        for key, variant in (("checkout-button", "treatment"), ("later-checkout", "control"))
    }
    assert revenue == {"checkout-button": 6.0, "later-checkout": 6.0}  # both purchases, once each


@pytest.mark.usefixtures("experiment")
async def test_dedup_marks_share_a_hash_per_user_and_outlive_the_dedup_window_only_until_pruned(
    settings: CollectorSettings, redis: Redis
) -> None:
    day = 86_400_000
    window = settings.model_copy(update={"dedup_ttl_seconds": 2 * 86_400})
    folder = statistics_folder(window, redis, settings.redis_keys)
    start = (time.time_ns() // 1_000_000 // day) * day  # the start of a day
    await folder.apply([_event("ann", "purchase", 0)], [start])
    recent = [_event("ann", "purchase", index) for index in range(1, 64)]
    await folder.apply(recent, [start + 3 * day] * len(recent))  # the 64th field: old marks are pruned

    state = await redis.hgetall(settings.redis_keys.user_state("ann"))
    # Besides marks, the state holds daily totals (6-byte fields) and the size of its next sweep ("~").
    marks = {field for field in state if len(field) == DEDUP_MARK_BYTES}
    assert len(marks) == 63 and dedup_mark("purchase-ann-0") not in marks
    assert dedup_mark("purchase-ann-1") in marks
    # The daily totals of all 64 purchases survive the sweep that happened part-way through the second call.
    totals = [float(value) for field, value in state.items() if len(field) == DAILY_TOTALS_FIELD_BYTES]
    assert sum(totals) == 64 * 3.0
    # The daily totals keep the state longer than the dedup window: as long as CUPED can look back.
    assert await redis.ttl(settings.redis_keys.user_state("ann")) > 2 * 86_400
    again = await folder.apply([_event("ann", "purchase", 5), _event("ann", "purchase", 0)], [start + 3 * day] * 2)
    # Within the window a resend is a duplicate; past it (and pruned) it is applied again, as a key's expiry did.
    assert (again.duplicates, again.applied) == (1, 1)


@pytest.mark.usefixtures("experiment")
async def test_a_user_with_many_live_marks_keeps_every_one_and_is_swept_ever_more_rarely(
    settings: CollectorSettings, redis: Redis
) -> None:
    """Each sweep reads the whole state, so it waits until the state has doubled since the previous one; marks within
    the dedup window all stay, and resends of any of them are still duplicates."""
    folder = statistics_folder(settings, redis, settings.redis_keys)
    key = settings.redis_keys.user_state("bot")
    arrived = time.time_ns() // 1_000_000
    thresholds = []
    for start in range(0, 1_000, 50):
        batch = [_event("bot", "page_view", index) for index in range(start, start + 50)]
        await folder.apply(batch, [arrived] * len(batch))
        thresholds.append(int(await redis.hget(key, "~") or 0))

    assert await redis.hlen(key) == 1_000 + 1  # every mark, and the sweep threshold
    # Sweeps at 64, 128, 256 and 512 fields (nothing was stale, so each doubled the next one's size), none since:
    # the next is at 1,024. Before, every multiple of 64 swept: fifteen times so far, each reading every field.
    assert sorted(set(thresholds)) == [0, 128, 256, 512, 1024]
    resent = [_event("bot", "page_view", index) for index in (0, 499, 999)]
    outcome = await folder.apply(resent, [arrived] * len(resent))
    assert (outcome.applied, outcome.duplicates) == (0, 3)


@pytest.mark.usefixtures("experiment")
async def test_a_state_written_before_marks_kept_days_is_swept_by_the_rules_it_was_written_with(
    settings: CollectorSettings, redis: Redis
) -> None:
    """States from before held marks' hours of arrival and an event name's days in one field: a sweep still drops
    what is stale of them and keeps the rest, even under an 8-character event name (a mark's length)."""
    folder = statistics_folder(settings, redis, settings.redis_keys)
    now = time.time_ns() // 1_000_000
    hour, day = 3_600_000, 86_400_000
    today = now // day
    key = settings.redis_keys.user_state("old-layout")
    window_days = settings.dedup_ttl_seconds // 86_400
    await redis.hset(key, mapping={
        dedup_mark("stale"): (now - (window_days + 1) * day) // hour,
        dedup_mark("live"): (now - day) // hour,
        b"purchase": f"{today - 40}:5,1",  # no lookback reaches it
        b"checkout": f"{today - 3}:2,1;{today - 40}:1,1",  # its newest day is within reach
    })
    await redis.expire(key, 3600)
    events = [_event("old-layout", "page_view", index) for index in range(60)]
    await folder.apply(events, [now] * len(events))  # the 64th field: a sweep

    state = await redis.hgetall(key)
    assert dedup_mark("stale") not in state and b"purchase" not in state
    assert state[dedup_mark("live")] == b"%d" % ((now - day) // hour)
    assert state[b"checkout"] == f"{today - 3}:2,1;{today - 40}:1,1".encode()
    assert len(state) == 60 + 2 + 1  # the new marks, the live old ones and the next sweep's size
