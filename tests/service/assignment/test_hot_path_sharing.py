"""What the hot path's shortcuts must not change: concurrent first visits sharing Redis round trips keep each
user's own sticky record and exposure; requests answered in front of the framework are counted like the others;
browser requests (an ``Origin`` header) still get their CORS headers."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.assignment.adapters.sticky import StickyKey, StickyStore, StickyValue
from services.assignment.config import AssignmentSettings
from splitstream.evaluation import sticky_field
from splitstream.events import Exposure, decode
from tests.conftest import auth
from tests.service.assignment.conftest import RunApp, create_experiment, read_topic

USERS = 40


async def test_concurrent_first_visits_each_get_their_record_and_one_exposure(
    client: httpx.AsyncClient, settings: AssignmentSettings, redis: Redis, unique: str
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    users = [f"user-{index}" for index in range(USERS)]

    async def assign(user: str) -> dict[str, object]:
        answer = await client.post("/v1/assign", json={"user_id": user, "experiments": [key]}, headers=auth("ingest"))
        assert answer.status_code == 200, answer.text
        [assignment] = answer.json()["assignments"]
        return assignment  # type: ignore[no-any-return]

    first = await asyncio.gather(*(assign(user) for user in users))
    again = await asyncio.gather(*(assign(user) for user in users))

    assert [a["reason"] for a in first] == ["hashed"] * USERS
    assert [a["reason"] for a in again] == ["sticky"] * USERS
    assert [a["variant"] for a in again] == [a["variant"] for a in first]
    field = sticky_field(key, 1)
    stored = [await redis.hget(settings.redis_keys.sticky("user_id", user), field) for user in users]
    assert [value.decode() if isinstance(value, bytes) else value for value in stored] == [a["variant"] for a in first]
    exposures = [decode(record.value) for record in await read_topic(settings)]
    assert all(isinstance(exposure, Exposure) for exposure in exposures)
    assert sorted(exposure.user_id for exposure in exposures) == sorted(users)


async def test_a_failing_command_fails_only_the_caller_that_sent_it(
    settings: AssignmentSettings, redis: Redis, unique: str
) -> None:
    keys = settings.redis_keys
    store = StickyStore(redis, keys)
    broken_unit = f"broken-{unique}"
    await redis.set(keys.sticky("user_id", broken_unit), "not a hash")  # HMGET on it is a WRONGTYPE error
    await redis.hset(keys.sticky("user_id", "kept"), "exp#1", "b")
    kept, broken = StickyKey("user_id", "kept", "exp#1"), StickyKey("user_id", broken_unit, "exp#1")

    found, failed = await asyncio.gather(store.lookup([kept]), store.lookup([broken]), return_exceptions=True)

    assert found == {kept: StickyValue("b", exposure_logged=True)}
    assert isinstance(failed, ResponseError)


def _requests(service: str, method: str, status: int) -> float:
    labels = {"service": service, "method": method, "route": "/v1/assign", "status": str(status)}
    return REGISTRY.get_sample_value("splitstream_http_requests_total", labels) or 0.0


async def test_answers_are_counted_and_browsers_get_cors_headers(run_app: RunApp, unique: str) -> None:
    origin = "https://shop.example"
    async with run_app(cors_origins=[origin]) as http:
        key = f"exp-{unique}"
        await create_experiment(http, key)
        body = {"user_id": "u-1", "experiments": [key]}
        ok_before, denied_before = _requests("assignment", "POST", 200), _requests("assignment", "POST", 401)

        plain = await http.post("/v1/assign", json=body, headers=auth("ingest"))
        browser = await http.post("/v1/assign", json=body, headers={**auth("ingest"), "origin": origin})
        denied = await http.post("/v1/assign", json=body)

        assert plain.status_code == browser.status_code == 200
        assert "access-control-allow-origin" not in plain.headers
        assert browser.headers["access-control-allow-origin"] == origin
        [first], [second] = plain.json()["assignments"], browser.json()["assignments"]
        assert (first["reason"], second["reason"], second["variant"]) == ("hashed", "sticky", first["variant"])
        assert (denied.status_code, denied.json()["error"]["code"]) == (401, "unauthorized")
        assert _requests("assignment", "POST", 200) - ok_before == 2
        assert _requests("assignment", "POST", 401) - denied_before == 1


@pytest.mark.parametrize("authorization", ["Bearer test-read-key", "Bearer wrong", "Basic !!"])
async def test_a_header_that_once_failed_or_lacks_ingest_keeps_failing(
    client: httpx.AsyncClient, unique: str, authorization: str
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    body = {"user_id": "u-1", "experiments": [key]}
    assert (await client.post("/v1/assign", json=body, headers=auth("ingest"))).status_code == 200
    for _ in range(2):
        answer = await client.post("/v1/assign", json=body, headers={"Authorization": authorization})
        assert answer.status_code in {401, 403}, answer.text
