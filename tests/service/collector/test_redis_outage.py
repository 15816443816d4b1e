"""The consumer keeps one fold call in flight while it decodes the next batch; when Redis drops its connections
(here: CLIENT KILL of the consumer's own connections, over and over), the call is made again and every event still
counts exactly once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from services.collector.adapters.fold import read_stats
from services.collector.aggregator import Aggregator
from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent
from tests.service.collector.conftest import EXPERIMENT
from tests.service.collector.test_aggregation import bought, exposed

USERS = 60


async def _kill_connections_named(redis: Redis, name: str) -> int:
    """Kill every client connection called ``name`` (and only those: other tests' clients share this Redis)."""
    listing = await redis.execute_command("CLIENT", "LIST", "TYPE", "normal")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    ids = [fields["id"] for fields in (dict(part.split("=", 1) for part in line.split() if "=" in part)
                                       for line in text.splitlines()) if fields.get("name") == name]
    if not ids:
        return 0
    return int(await redis.execute_command("CLIENT", "KILL", "ID", *ids))


@pytest.mark.usefixtures("experiment")
async def test_connections_killed_while_folds_are_in_flight_lose_and_double_nothing(
    settings: CollectorSettings, redis: Redis, redis_url: str, unique: str, event_log: EventLog
) -> None:
    events: list[Exposure | TrackEvent] = []
    for index in range(USERS):
        user = f"user-{index}"
        events.append(exposed(user, ("control", "treatment")[index % 2]))
        events += [bought(user, f"buy-{user}-{n}", value=2.5) for n in range(2)]
    await event_log.publish(events)
    name = f"outage-{unique}"
    consumer_redis = Redis.from_url(redis_url, client_name=name)
    aggregator = Aggregator(settings.model_copy(update={"consumer_batch_max": 7}), consumer_redis,
                            poll_timeout_ms=100, retry_seconds=0.2)
    running = asyncio.create_task(aggregator.run_until_stopped())
    try:
        kills = 0
        # A call killed after Redis ran it is made again and finds its events marked: duplicates, never applied
        # twice. So the run is over once every event is applied (a lost one would keep it waiting until the timeout).
        async with asyncio.timeout(60):
            while (await read_stats(redis, settings.redis_keys))["applied"] < len(events):
                kills += await _kill_connections_named(redis, name)
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.5)  # anything still in flight lands

        assert kills > 0, "the consumer's connections must have been killed while it worked"
        assert (await read_stats(redis, settings.redis_keys))["applied"] == len(events)
        for variant in ("control", "treatment"):
            folded = await redis.hgetall(settings.redis_keys.variant_stats(EXPERIMENT, variant))
            assert int(folded[b"users"]) == USERS // 2
            assert float(folded[b"converted:sum"]) == USERS // 2
            assert float(folded[b"revenue:sum"]) == USERS // 2 * 5.0
            assert float(folded[b"revenue:sumsq"]) == USERS // 2 * 25.0
    finally:
        aggregator.stop()
        await asyncio.wait_for(running, timeout=15)
        await consumer_redis.aclose()
