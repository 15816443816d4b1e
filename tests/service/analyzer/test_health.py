"""/healthz and /readyz of the analyzer: only Redis is a dependency."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager

from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings


async def test_ready_when_redis_answers(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["dependencies"] == {"redis": "ok"}


async def test_not_ready_naming_redis_when_it_is_down(common_settings: dict[str, str]) -> None:
    # Port 1 on localhost refuses connections; Kafka is not checked at all, even at a dead address.
    settings = AnalyzerSettings(
        **{**common_settings, "redis_url": "redis://127.0.0.1:1/0", "kafka_bootstrap_servers": "127.0.0.1:1"}
    )  # type: ignore[arg-type]
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://analyzer") as http:
            assert (await http.get("/healthz")).status_code == 200
            response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert set(body["dependencies"]) == {"redis"}

