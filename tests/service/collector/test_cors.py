"""Browsers may POST events from the configured origins only (CORS preflight and the actual request)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager

from services.collector.app import create_app
from services.collector.config import CollectorSettings
from tests.conftest import auth

SHOP = "https://shop.example.com"


@pytest.fixture
async def browser_client(settings: CollectorSettings) -> AsyncIterator[httpx.AsyncClient]:
    allowing = settings.model_copy(update={"cors_origins": [SHOP]})
    async with LifespanManager(create_app(allowing)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
            yield http


def preflight(origin: str, headers: str = "authorization, content-type") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers}


async def test_a_preflight_from_an_allowed_origin_may_post_with_the_key_and_json(
    browser_client: httpx.AsyncClient,
) -> None:
    answer = await browser_client.options("/v1/events", headers=preflight(SHOP))

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed_headers = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers


async def test_a_preflight_from_another_origin_or_for_another_header_is_refused(
    browser_client: httpx.AsyncClient,
) -> None:
    stranger = await browser_client.options("/v1/events", headers=preflight("https://evil.example.com"))
    odd_header = await browser_client.options("/v1/events", headers=preflight(SHOP, "x-forwarded-user"))

    assert stranger.status_code == 400
    assert "access-control-allow-origin" not in stranger.headers
    assert odd_header.status_code == 400


async def test_the_actual_post_from_an_allowed_origin_is_readable_by_the_page(
    browser_client: httpx.AsyncClient,
) -> None:
    event = {"type": "event", "event_id": "e1", "user_id": "u1", "name": "purchase",
             "timestamp": datetime.now(UTC).isoformat()}

    answer = await browser_client.post(
        "/v1/events", json={"events": [event]}, headers={**auth("ingest"), "Origin": SHOP}
    )

    assert answer.status_code == 202
    assert answer.headers["access-control-allow-origin"] == SHOP


async def test_without_configured_origins_no_cross_origin_access_is_granted(client: httpx.AsyncClient) -> None:
    answer = await client.options("/v1/events", headers=preflight(SHOP))

    assert "access-control-allow-origin" not in answer.headers
    assert answer.status_code == 405
