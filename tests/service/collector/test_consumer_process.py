"""``python -m services.collector.consumer``: configured from the environment, folds, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime

import httpx
from redis.asyncio import Redis

from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment
from tests.service.collector.conftest import EXPERIMENT, records_seen, wait_for_stats

APPLIED_TWICE = 'splitstream_consumer_events_total{outcome="applied"} 2.0'


async def scrape_until(url: str, expected: str, within: float = 10.0) -> str:
    """The exposition at ``url`` once it contains ``expected`` (the counters follow Redis by a moment)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while True:
            text = (await http.get(url)).text
            if expected in text or time.monotonic() > deadline:
                return text
            await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_the_consumer_process_folds_events_serves_its_metrics_and_exits_cleanly_on_sigterm(
    settings: CollectorSettings, redis: Redis, event_log: EventLog, experiment: Experiment
) -> None:
    now = datetime.now(UTC)
    await event_log.publish([
        Exposure(type="exposure", event_id="e1", user_id="ann", experiment=EXPERIMENT, variant="control",
                 timestamp=now),
        TrackEvent(type="event", event_id="e2", user_id="ann", name="purchase", value=3.0, timestamp=now),
    ])
    env = {
        **os.environ,
        "SPLITSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SPLITSTREAM_REDIS_URL": settings.redis_url,
        "SPLITSTREAM_REDIS_PREFIX": settings.redis_prefix,
        "SPLITSTREAM_EVENTS_TOPIC": settings.events_topic,
        "SPLITSTREAM_COLLECTOR_CONSUMER_GROUP": f"group-{settings.redis_prefix}",
        "SPLITSTREAM_COLLECTOR_CONSUMER_METRICS_HOST": "127.0.0.1",
        "SPLITSTREAM_COLLECTOR_CONSUMER_METRICS_PORT": str(metrics_port := free_port()),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.collector.consumer", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        stats = await wait_for_stats(redis, settings, records_seen(2))
        metrics = await scrape_until(f"http://127.0.0.1:{metrics_port}/metrics", APPLIED_TWICE)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=20)

    assert stats["applied"] == 2
    assert await redis.hget(settings.redis_keys.variant_stats(EXPERIMENT, "control"), "revenue:sum") == b"3"
    assert process.returncode == 0, output.decode()
    assert b"aggregator stopped" in output
    assert APPLIED_TWICE in metrics
