"""POST /v1/events at its limits: body size, unreadable JSON, old timestamps, the receive stamp, and the metrics."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager

from services.collector.app import create_app
from services.collector.config import CollectorSettings
from splitstream.events import decode
from tests.conftest import auth
from tests.service.collector.conftest import metric_sample, read_topic

LIMIT = 2000


def purchase(index: int, at: datetime | None = None, **changes: Any) -> dict[str, Any]:
    stamp = (at or datetime.now(UTC)).isoformat()
    return {"type": "event", "event_id": f"buy-{index}", "user_id": f"user-{index}", "name": "purchase",
            "value": 1.0, "timestamp": stamp, **changes}


@pytest.fixture
async def small_client(settings: CollectorSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A collector whose bodies may hold at most LIMIT bytes."""
    limited = settings.model_copy(update={"max_body_bytes": LIMIT})
    async with LifespanManager(create_app(limited)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://collector") as http:
            yield http


def body_of_size(size: int) -> bytes:
    """A valid batch padded with JSON whitespace to exactly ``size`` bytes."""
    body = orjson.dumps({"events": [purchase(0)]})
    assert len(body) <= size
    return body + b" " * (size - len(body))


def json_headers() -> dict[str, str]:
    return {**auth("ingest"), "content-type": "application/json"}


async def test_a_body_at_the_limit_is_accepted_and_one_byte_more_is_refused_naming_the_body(
    small_client: httpx.AsyncClient,
) -> None:
    at_limit = await small_client.post("/v1/events", content=body_of_size(LIMIT), headers=json_headers())
    over = await small_client.post("/v1/events", content=body_of_size(LIMIT + 1), headers=json_headers())

    assert at_limit.status_code == 202, at_limit.text
    assert over.status_code == 413
    error = over.json()["error"]
    assert error["code"] == "payload_too_large"
    assert [f["field"] for f in error["fields"]] == ["body"]
    assert f"declares {LIMIT + 1} bytes" in error["fields"][0]["reason"]


async def test_an_endless_body_without_a_length_is_refused_after_reading_just_past_the_limit(
    small_client: httpx.AsyncClient,
) -> None:
    chunk = b" " * 100
    yielded = itertools.count()

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"events": ['
        while True:
            next(yielded)
            yield chunk

    answer = await small_client.post("/v1/events", content=endless(), headers=json_headers())

    assert answer.status_code == 413
    assert [f["field"] for f in answer.json()["error"]["fields"]] == ["body"]
    assert next(yielded) <= LIMIT // len(chunk) + 2  # the reader stopped as soon as the limit was passed


async def test_unreadable_json_is_a_400_naming_the_body_and_a_wrong_shape_stays_422(
    client: httpx.AsyncClient,
) -> None:
    for content in (b'{"events": [', b"", b"\xff\xfe", b"{'events': []}"):
        answer = await client.post("/v1/events", content=content, headers=json_headers())
        assert answer.status_code == 400, content
        error = answer.json()["error"]
        assert error["code"] == "malformed_json"
        assert [f["field"] for f in error["fields"]] == ["body"]

    wrong_shape = await client.post("/v1/events", content=b'{"events": "many"}', headers=json_headers())
    assert (wrong_shape.status_code, wrong_shape.json()["error"]["code"]) == (422, "invalid_request")


async def test_timestamps_older_than_the_past_bound_are_rejected_naming_the_bound(
    client: httpx.AsyncClient, settings: CollectorSettings
) -> None:
    bound = timedelta(seconds=settings.max_past_skew_seconds)
    now = datetime.now(UTC)
    batch = [purchase(0, at=now - bound + timedelta(minutes=1)), purchase(1, at=now - bound - timedelta(minutes=1))]

    answer = await client.post("/v1/events", json={"events": batch}, headers=auth("ingest"))

    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "rejected": [{
        "index": 1, "field": "events.1.timestamp",
        "reason": f"timestamp is more than {settings.max_past_skew_seconds} seconds in the past",
    }]}


async def test_each_published_event_carries_the_server_receive_time_even_if_the_client_sent_one(
    client: httpx.AsyncClient, settings: CollectorSettings
) -> None:
    forged = purchase(1, received_at="2000-01-01T00:00:00Z")
    garbage = purchase(2, received_at="not a time")
    before = datetime.now(UTC)

    answer = await client.post("/v1/events", json={"events": [purchase(0), forged, garbage]}, headers=auth("ingest"))

    after = datetime.now(UTC)
    assert answer.json() == {"accepted": 3, "rejected": []}
    records = await read_topic(settings, 3)
    stamps = {orjson.loads(record.value)["received_at"] for record in records}
    assert len(stamps) == 1  # one receive time for the whole batch
    received_at = decode(records[0].value).received_at
    assert received_at is not None and before <= received_at <= after
    assert received_at.tzinfo == UTC


async def test_ingest_metrics_count_events_answers_and_latency(client: httpx.AsyncClient) -> None:
    accepted = metric_sample("splitstream_ingest_events_total", outcome="accepted")
    rejected = metric_sample("splitstream_ingest_events_total", outcome="rejected")
    answered_202 = metric_sample("splitstream_ingest_requests_total", status="202")
    answered_400 = metric_sample("splitstream_ingest_requests_total", status="400")
    answered_401 = metric_sample("splitstream_ingest_requests_total", status="401")
    timed = metric_sample("splitstream_ingest_request_duration_seconds_count")
    batch = [purchase(0), purchase(1), purchase(2, value="abc"), purchase(3, name="bad name")]

    await client.post("/v1/events", json={"events": batch}, headers=auth("ingest"))
    await client.post("/v1/events", content=b"{", headers=json_headers())
    await client.post("/v1/events", json={"events": batch})
    exposition = (await client.get("/metrics")).text

    assert metric_sample("splitstream_ingest_events_total", outcome="accepted") - accepted == 2
    assert metric_sample("splitstream_ingest_events_total", outcome="rejected") - rejected == 2
    assert metric_sample("splitstream_ingest_requests_total", status="202") - answered_202 == 1
    assert metric_sample("splitstream_ingest_requests_total", status="400") - answered_400 == 1
    assert metric_sample("splitstream_ingest_requests_total", status="401") - answered_401 == 1
    assert metric_sample("splitstream_ingest_request_duration_seconds_count") - timed == 3
    assert 'splitstream_ingest_events_total{outcome="accepted"}' in exposition
    assert "splitstream_kafka_publish_errors_total" in exposition
