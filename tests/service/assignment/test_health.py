"""Liveness and readiness, including with Kafka or Redis out of reach."""

from __future__ import annotations

import httpx

from tests.conftest import auth
from tests.service.assignment.conftest import RunApp, create_experiment, spec

NOTHING_LISTENS = "127.0.0.1:1"


async def test_ready_when_redis_and_kafka_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "dependencies": {"redis": "ok", "kafka": "ok", "catalog": "ok"}}


async def test_without_kafka_the_service_starts_but_refuses_to_lose_exposures(
    client: httpx.AsyncClient, run_app: RunApp, unique: str
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    params = {"experiment": key, "user_id": "user-1"}

    async with run_app(kafka_bootstrap_servers=NOTHING_LISTENS, kafka_retry_seconds=60) as offline:
        alive = await offline.get("/healthz")
        ready = await offline.get("/readyz")
        logged = await offline.get("/v1/assign", params=params, headers=auth("ingest"))
        unlogged = await offline.get("/v1/assign", params={**params, "log_exposure": "false"}, headers=auth("ingest"))

    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["kafka"]
    assert ready.json()["dependencies"]["redis"] == "ok"
    assert logged.status_code == 503
    assert logged.json()["error"]["code"] == "dependency_unavailable"
    assert unlogged.status_code == 200
    assert unlogged.json()["exposure_logged"] is False


async def test_without_redis_readiness_and_requests_name_it(run_app: RunApp, unique: str) -> None:
    async with run_app(redis_url=f"redis://{NOTHING_LISTENS}/0") as offline:
        alive = await offline.get("/healthz")
        ready = await offline.get("/readyz")
        created = await offline.post("/v1/experiments", json=spec(f"exp-{unique}"), headers=auth("admin"))
        assigned = await offline.get("/v1/assign", params={"experiment": "exp", "user_id": "u"},
                                     headers=auth("ingest"))

    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["redis", "catalog"]
    for answer in (created, assigned):
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "dependency_unavailable"
        assert "redis" in answer.json()["error"]["message"]
