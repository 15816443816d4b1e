"""The consumer keeps one fold call in flight while it decodes the next batch; when Redis drops its connections
(here: CLIENT KILL, over and over), the call is made again and every event still counts exactly once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from services.collector.adapters.fold import read_stats
from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent
from tests.service.collector.conftest import RunAggregator
from tests.service.collector.test_aggregation import bought, exposed

USERS = 60


@pytest.mark.usefixtures("experiment")
async def test_connections_killed_while_folds_are_in_flight_lose_and_double_nothing(
    settings: CollectorSettings, redis: Redis, redis_url: str, event_log: EventLog, run_aggregator: RunAggregator
) -> None:
    events: list[Exposure | TrackEvent] = []
    for index in range(USERS):
        user = f"user-{index}"
        events.append(exposed(user, ("control", "treatment")[index % 2]))
        events += [bought(user, f"buy-{user}-{n}", value=2.5) for n in range(2)]
    await event_log.publish(events)
    # Its own connection: CLIENT KILL ... SKIPME yes spares the connection that sends it.
    killer = Redis.from_url(redis_url)
    try:
        await run_aggregator(settings.model_copy(update={"consumer_batch_max": 7}))
        kills = 0
        # A call killed after Redis ran it is made again and finds its events marked: duplicates, never applied
        # twice. So the run is over once every event is applied (a lost one would keep it waiting until the timeout).
        async with asyncio.timeout(60):
            while True:
                stats = await read_stats(killer, settings.redis_keys)
                if stats["applied"] >= len(events):
                    break
                kills += await killer.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
                await asyncio.sleep(0.005)

        assert kills > 0, "the consumer's connections must have been killed while it worked"
        await asyncio.sleep(0.5)  # anything still in flight lands
        assert (await read_stats(killer, settings.redis_keys))["applied"] == len(events)
        for variant in ("control", "treatment"):
            folded = await killer.hgetall(settings.redis_keys.variant_stats("checkout-button", variant))
            assert int(folded[b"users"]) == USERS // 2
            assert float(folded[b"converted:sum"]) == USERS // 2
            assert float(folded[b"revenue:sum"]) == USERS // 2 * 5.0
            assert float(folded[b"revenue:sumsq"]) == USERS // 2 * 25.0
    finally:
        await killer.aclose()
        await redis.connection_pool.disconnect()  # the shared client's killed connections: the next use reconnects
