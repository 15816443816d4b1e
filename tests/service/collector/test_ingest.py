"""POST /v1/events against the real broker: what 202 promises, and every way a batch is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent, decode
from tests.conftest import auth
from tests.service.collector.conftest import EXPERIMENT, read_topic

NOW = datetime.now(UTC)

# Exposures are checked against the registry, so every test here has the experiment they name.
pytestmark = pytest.mark.usefixtures("experiment")


def exposure(index: int) -> dict[str, Any]:
    return {"type": "exposure", "event_id": f"exp-{index}", "user_id": f"user-{index}", "experiment": EXPERIMENT,
            "variant": "control", "timestamp": NOW.isoformat()}


def purchase(index: int, value: Any = 9.5) -> dict[str, Any]:
    return {"type": "event", "event_id": f"buy-{index}", "user_id": f"user-{index}", "name": "purchase",
            "value": value, "timestamp": NOW.isoformat()}


async def test_a_valid_batch_is_acknowledged_and_on_the_topic(
    client: httpx.AsyncClient, settings: CollectorSettings
) -> None:
    batch = [exposure(i) for i in range(5)] + [purchase(i) for i in range(5)] + [purchase(9, value=None)]

    answer = await client.post("/v1/events", json={"events": batch}, headers=auth("ingest"))

    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 11, "rejected": []}
    records = await read_topic(settings, 11)
    events = [decode(record.value) for record in records]
    assert sorted(e.event_id for e in events) == sorted(item["event_id"] for item in batch)
    assert all(record.key == event.user_id.encode() for record, event in zip(records, events, strict=True))
    buy = next(e for e in events if e.event_id == "buy-2")
    assert isinstance(buy, TrackEvent) and buy.value == 9.5
    seen = next(e for e in events if e.event_id == "exp-3")
    assert isinstance(seen, Exposure) and seen.variant == "control" and seen.timestamp == NOW


async def test_a_mixed_batch_accepts_the_good_events_and_lists_the_bad_ones(
    client: httpx.AsyncClient, settings: CollectorSettings
) -> None:
    missing_user = purchase(2)
    del missing_user["user_id"]
    batch = [
        exposure(0),
        {**exposure(1), "type": "click"},
        missing_user,
        purchase(3, value="NaN"),
        purchase(4, value="abc"),
        {**purchase(5), "timestamp": "2999-01-01T00:00:00Z"},
        purchase(6),
        "not an event",
    ]

    answer = await client.post("/v1/events", json={"events": batch}, headers=auth("ingest"))

    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "events.1.type"),
        (2, "events.2.user_id"),
        (3, "events.3.value"),
        (4, "events.4.value"),
        (5, "events.5.timestamp"),
        (7, "events.7"),
    ]
    assert "finite" in body["rejected"][2]["reason"]
    assert "future" in body["rejected"][4]["reason"]
    records = await read_topic(settings, 2)
    assert sorted(decode(r.value).event_id for r in records) == ["buy-6", "exp-0"]


async def test_a_batch_without_any_valid_event_is_refused_naming_each_field(client: httpx.AsyncClient) -> None:
    batch = [{**exposure(0), "variant": "has spaces"}, {**purchase(1), "timestamp": "yesterday"}]

    answer = await client.post("/v1/events", json={"events": batch}, headers=auth("ingest"))

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == ["events.0.variant", "events.1.timestamp"]


async def test_a_timestamp_within_the_allowed_skew_is_accepted(client: httpx.AsyncClient) -> None:
    soon = {**purchase(0), "timestamp": (NOW + timedelta(hours=1)).isoformat()}

    answer = await client.post("/v1/events", json={"events": [soon]}, headers=auth("ingest"))

    assert answer.status_code == 202
    assert answer.json()["accepted"] == 1


async def _refusal(client: httpx.AsyncClient, content: bytes) -> tuple[int, list[str]]:
    answer = await client.post(
        "/v1/events", content=content, headers={**auth("ingest"), "content-type": "application/json"}
    )
    return answer.status_code, [f["field"] for f in answer.json()["error"]["fields"]]


async def test_malformed_bodies_are_refused_naming_what_is_wrong(
    client: httpx.AsyncClient, settings: CollectorSettings
) -> None:
    too_many = [purchase(i) for i in range(settings.max_batch_events + 1)]

    assert await _refusal(client, b'{"events": [') == (400, ["body"])
    assert await _refusal(client, b'[{"type": "event"}]') == (422, ["body"])
    assert await _refusal(client, b"{}") == (422, ["events"])
    assert await _refusal(client, b'{"events": {"type": "event"}}') == (422, ["events"])
    assert await _refusal(client, b'{"events": []}') == (422, ["events"])
    assert await _refusal(client, b'{"events": [], "extra": 1}') == (422, ["extra"])
    assert await _refusal(client, orjson.dumps({"events": too_many})) == (413, ["events"])


async def test_ingest_needs_a_key_with_the_ingest_scope(client: httpx.AsyncClient) -> None:
    body = {"events": [purchase(0)]}

    missing = await client.post("/v1/events", json=body)
    unknown = await client.post("/v1/events", json=body, headers={"Authorization": "Bearer nope"})
    wrong_scope = await client.post("/v1/events", json=body, headers=auth("read"))
    admin = await client.post("/v1/events", json=body, headers=auth("admin"))

    assert (missing.status_code, unknown.status_code, wrong_scope.status_code) == (401, 401, 403)
    assert missing.json()["error"]["code"] == "unauthorized"
    assert wrong_scope.json()["error"]["code"] == "forbidden"
    assert admin.status_code == 202


async def test_an_exposure_to_an_unknown_experiment_or_variant_is_refused_naming_it(client: httpx.AsyncClient) -> None:
    batch = [{**exposure(0), "experiment": "no-such-test"}, {**exposure(1), "variant": "purple"}]

    answer = await client.post("/v1/events", json={"events": batch}, headers=auth("ingest"))

    assert answer.status_code == 422, answer.text
    fields = [f["field"] for f in answer.json()["error"]["fields"]]
    assert fields == ["events.0.experiment", "events.1.variant"]
