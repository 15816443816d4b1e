"""/healthz and /readyz, and what ingest answers while Kafka is out of reach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from asgi_lifespan import LifespanManager

from services.collector.app import create_app
from services.collector.config import CollectorSettings
from splitstream.errors import RETRY_AFTER_SECONDS
from tests.conftest import auth
from tests.service.collector.conftest import metric_sample

UNREACHABLE = "127.0.0.1:1"


@asynccontextmanager
async def collector(settings: CollectorSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
            yield http


async def test_ready_when_kafka_and_redis_answer(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json()["dependencies"] == {"kafka": "ok", "redis": "ok"}


async def test_not_ready_names_redis_when_it_does_not_answer(settings: CollectorSettings) -> None:
    broken = settings.model_copy(update={"redis_url": f"redis://{UNREACHABLE}/0"})

    async with collector(broken) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["redis"]
    assert health.status_code == 200


async def test_without_kafka_the_service_runs_unready_and_promises_nothing(settings: CollectorSettings) -> None:
    broken = settings.model_copy(update={"kafka_bootstrap_servers": UNREACHABLE})
    event = {"type": "event", "event_id": "e1", "user_id": "u1", "name": "purchase",
             "timestamp": datetime.now(UTC).isoformat()}
    publish_errors = metric_sample("splitstream_kafka_publish_errors_total")

    async with collector(broken) as client:
        ready = await client.get("/readyz")
        ingest = await client.post("/v1/events", json={"events": [event]}, headers=auth("ingest"))

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["kafka"]
    assert ingest.status_code == 503
    assert ingest.json()["error"]["code"] == "dependency_unavailable"
    assert ingest.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert metric_sample("splitstream_kafka_publish_errors_total") - publish_errors == 1
