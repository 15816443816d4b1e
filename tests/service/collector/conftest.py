"""Fixtures of the collector's service tests: an isolated topic and Redis prefix per test, the app, the consumer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.collector.adapters.fold import read_stats
from services.collector.aggregator import Aggregator, DeadLetterSink
from services.collector.app import create_app
from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog, ensure_topics
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.keys import user_place, user_record
from splitstream.registry import ExperimentRegistry

EXPERIMENT = "checkout-button"
VARIANTS = ("control", "treatment")


@pytest.fixture
async def settings(common_settings: dict[str, str], unique: str) -> CollectorSettings:
    # A group of its own: sharing the running stack's group would make every test wait for a rebalance.
    created = CollectorSettings(
        **common_settings, consumer_group=f"test-aggregator-{unique}", consumer_metrics_port=0  # type: ignore[arg-type]
    )
    await ensure_topics(
        created.kafka_bootstrap_servers, [created.events_topic, created.dead_letter_topic], partitions=4
    )
    return created


@pytest.fixture
async def client(settings: CollectorSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
            yield http


@pytest.fixture
async def event_log(settings: CollectorSettings) -> AsyncIterator[EventLog]:
    log = EventLog(settings.kafka_bootstrap_servers, settings.events_topic)
    await log.start()
    yield log
    await log.stop()


@pytest.fixture
async def experiment(redis: Redis, settings: CollectorSettings) -> Experiment:
    """Two variants; the event "purchase" feeds a conversion metric and a revenue (mean) metric."""
    created = Experiment(
        key=EXPERIMENT,
        variants=[Variant(key=key) for key in VARIANTS],
        metrics=[
            Metric(key="converted", type=MetricType.BINOMIAL, event="purchase"),
            Metric(key="revenue", type=MetricType.MEAN, event="purchase"),
        ],
        status=ExperimentStatus.RUNNING,
        salt="salt",
        created_at=datetime.now(UTC),
    )
    assert await ExperimentRegistry(redis, settings.redis_keys).create(created)
    return created


@dataclass
class RunningAggregator:
    aggregator: Aggregator
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Ask it to stop and wait until it has (which fails the test if it does not, or if it crashed)."""
        self.aggregator.stop()
        await asyncio.wait_for(self.task, timeout=15)


class RunAggregator(Protocol):
    def __call__(
        self, settings: CollectorSettings, *, dead_letters: DeadLetterSink | None = None
    ) -> Awaitable[RunningAggregator]: ...


@pytest.fixture
async def run_aggregator(redis: Redis) -> AsyncIterator[RunAggregator]:
    """Starts aggregators in the background; each is stopped (and must stop cleanly) at teardown at the latest."""
    running: list[RunningAggregator] = []

    async def start(settings: CollectorSettings, *, dead_letters: DeadLetterSink | None = None) -> RunningAggregator:
        aggregator = Aggregator(settings, redis, dead_letters=dead_letters, poll_timeout_ms=100, retry_seconds=0.2)
        running.append(RunningAggregator(aggregator, asyncio.create_task(aggregator.run_until_stopped())))
        return running[-1]

    yield start
    for handle in running:
        await handle.stop()


async def wait_for_stats(
    redis: Redis, settings: CollectorSettings, done: Callable[[dict[str, int]], bool], within: float = 20.0
) -> dict[str, int]:
    """Poll the consumer's counters until ``done`` holds; fail with the last values after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        stats = await read_stats(redis, settings.redis_keys)
        if done(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"the consumer did not get there within {within}s; counters: {stats}")
        await asyncio.sleep(0.05)


async def exposed_user_record(redis: Redis, settings: CollectorSettings, scope: str, user: str) -> dict[str, str]:
    """What the fold keeps of one exposed user (splitstream/keys.py ``user_record``); empty if never exposed."""
    place = user_place(user)
    return user_record(await redis.hget(settings.redis_keys.exposed_users(scope, place.bucket), place.field))


def records_seen(count: int) -> Callable[[dict[str, int]], bool]:
    """Every one of ``count`` published records was read: applied, skipped as duplicate, or counted as poison."""
    return lambda stats: stats["applied"] + stats["duplicates"] + stats["poison"] >= count


def metric_sample(name: str, **labels: str) -> float:
    """The current value of a sample of the default Prometheus registry (0 before its first increment)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def read_topic(
    settings: CollectorSettings, count: int, within: float = 20.0, *, topic: str | None = None
) -> list[ConsumerRecord]:
    """The first ``count`` records of ``topic`` (the events topic by default), read without a consumer group."""
    topic = topic or settings.events_topic
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + within
    try:
        while len(records) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            records.extend(record for partition in batches.values() for record in partition)
    finally:
        await consumer.stop()
    assert len(records) >= count, f"only {len(records)} of {count} records on {topic}"
    return records
