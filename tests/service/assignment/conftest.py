"""Fixtures of the assignment service's tests: an isolated topic and Redis prefix per test, and the app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from services.assignment.app import create_app
from services.assignment.config import AssignmentSettings
from splitstream.eventlog import ensure_topic
from tests.conftest import auth

RunApp = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def settings(common_settings: dict[str, str], redis: Redis) -> AssignmentSettings:
    # Depending on `redis` clears the test's keys afterwards.
    created = AssignmentSettings(**common_settings)  # type: ignore[arg-type]
    await ensure_topic(created.kafka_bootstrap_servers, created.events_topic, partitions=4)
    return created


@pytest.fixture
def run_app(settings: AssignmentSettings) -> RunApp:
    """Starts a fresh app instance (its own lifespan, cache and clients); overrides change its settings."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings.model_copy(update=overrides))
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://assignment") as http:
                yield http

    return run


@pytest.fixture
async def client(run_app: RunApp) -> AsyncIterator[httpx.AsyncClient]:
    async with run_app() as http:
        yield http


def spec(key: str, weights: tuple[float, ...] = (0.5, 0.5), **extra: Any) -> dict[str, Any]:
    names = ["control", *(f"treatment-{index}" for index in range(1, len(weights)))]
    return {
        "key": key,
        "variants": [{"key": name, "weight": weight} for name, weight in zip(names, weights, strict=True)],
        "metrics": [{"key": "purchased", "type": "binomial", "event": "purchase"}],
        **extra,
    }


async def create_experiment(
    client: httpx.AsyncClient, key: str, weights: tuple[float, ...] = (0.5, 0.5), *, start: bool = True
) -> dict[str, Any]:
    created = await client.post("/v1/experiments", json=spec(key, weights), headers=auth("admin"))
    assert created.status_code == 201, created.text
    if not start:
        return created.json()  # type: ignore[no-any-return]
    started = await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
    assert started.status_code == 200, started.text
    return started.json()  # type: ignore[no-any-return]


async def read_topic(settings: AssignmentSettings) -> list[ConsumerRecord]:
    """Every record on the test's topic, up to the end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.events_topic, p) for p in range(4)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        async with asyncio.timeout(10):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batches = await consumer.getmany(timeout_ms=200)
                records.extend(record for batch in batches.values() for record in batch)
        return records
    finally:
        await consumer.stop()
