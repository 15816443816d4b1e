"""Experiment administration over HTTP, against the real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.service.assignment.conftest import create_experiment, spec


def _fields(answer: httpx.Response) -> list[str]:
    return [field["field"] for field in answer.json()["error"]["fields"]]


async def test_create_stores_a_draft_salted_by_its_key(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    answer = await client.post("/v1/experiments", json=spec(key), headers=auth("admin"))

    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == {"key", "variants", "metrics", "analysis", "status", "salt", "created_at", "started_at"}
    assert created["key"] == key
    assert created["variants"] == [{"key": "control", "weight": 1.0}, {"key": "treatment-1", "weight": 1.0}]
    assert created["metrics"] == [{"key": "purchased", "type": "binomial", "event": "purchase", "role": "secondary",
                                   "higher_is_better": True, "margin": 0.0, "cap": None,
                                   "conversion_window_hours": None}]
    assert created["analysis"]["method"] == "frequentist" and created["analysis"]["alpha"] == 0.05
    assert (created["status"], created["salt"], created["started_at"]) == ("draft", key, None)
    assert abs(datetime.fromisoformat(created["created_at"]) - datetime.now(UTC)) < timedelta(seconds=30)

    fetched = await client.get(f"/v1/experiments/{key}", headers=auth("read"))
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_create_keeps_an_explicit_salt(client: httpx.AsyncClient, unique: str) -> None:
    answer = await client.post("/v1/experiments", json=spec(f"exp-{unique}", salt="shared-2024"), headers=auth("admin"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["salt"] == "shared-2024"


async def test_a_taken_key_is_a_conflict_naming_the_key(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key, start=False)
    again = await client.post("/v1/experiments", json=spec(key, (1, 3)), headers=auth("admin"))

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert _fields(again) == ["key"]
    kept = await client.get(f"/v1/experiments/{key}", headers=auth("read"))
    assert [v["weight"] for v in kept.json()["variants"]] == [1.0, 1.0]


def _with(experiment_key: str, /, **changes: Any) -> dict[str, Any]:
    return {**spec(experiment_key), **changes}


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (lambda k: _with(k, variants=[{"key": "a", "weight": 1}, {"key": "b", "weight": 0}]), "body.variants.1.weight"),
        (lambda k: _with(k, variants=[{"key": "a", "weight": 1}]), "body.variants"),
        (lambda k: _with(k, variants=[{"key": "a", "weight": 1}, {"key": "a", "weight": 2}]), "body.variants"),
        (lambda k: _with(k, metrics=[{"key": "m", "type": "median", "event": "e"}]), "body.metrics.0.type"),
        (lambda k: _with(k, metrics=[{"key": "m", "type": "mean", "event": "e"}] * 2), "body.metrics"),
        (lambda k: _with(k, key="has space"), "body.key"),
        (lambda k: _with(k, salt=""), "body.salt"),
        (lambda k: _with(k, colour="blue"), "body.colour"),
        (lambda k: {"variants": spec(k)["variants"]}, "body.key"),
    ],
    ids=["zero-weight", "one-variant", "duplicate-variants", "bad-metric-type", "duplicate-metrics", "bad-key",
         "empty-salt", "unknown-field", "missing-key"],
)
async def test_invalid_specs_are_rejected_naming_the_field(
    client: httpx.AsyncClient, unique: str, make_body: Any, field: str
) -> None:
    body = make_body(f"exp-{unique}")
    answer = await client.post("/v1/experiments", json=body, headers=auth("admin"))

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert _fields(answer) == [field]
    listed = await client.get("/v1/experiments", headers=auth("read"))
    assert listed.json() == {"experiments": []}


async def test_keys_and_scopes_guard_each_endpoint(client: httpx.AsyncClient, unique: str) -> None:
    body = spec(f"exp-{unique}")
    missing = await client.post("/v1/experiments", json=body)
    unknown = await client.post("/v1/experiments", json=body, headers={"Authorization": "Bearer nope"})
    reader = await client.post("/v1/experiments", json=body, headers=auth("read"))
    ingester = await client.get("/v1/experiments", headers=auth("ingest"))

    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "unauthorized")
    assert unknown.status_code == 401
    assert (reader.status_code, reader.json()["error"]["code"]) == (403, "forbidden")
    assert ingester.status_code == 403
    for path in ("start", "stop"):
        assert (await client.post(f"/v1/experiments/x/{path}", headers=auth("read"))).status_code == 403
    assert (await client.get("/v1/experiments", headers=auth("read"))).status_code == 200
    assert (await client.get("/v1/experiments", headers=auth("admin"))).status_code == 200


async def test_list_returns_every_experiment_by_key(client: httpx.AsyncClient, unique: str) -> None:
    keys = [f"b-{unique}", f"a-{unique}", f"c-{unique}"]
    for key in keys:
        await create_experiment(client, key, start=False)

    listed = await client.get("/v1/experiments", headers=auth("read"))

    assert listed.status_code == 200
    assert [e["key"] for e in listed.json()["experiments"]] == sorted(keys)


async def test_an_unknown_experiment_is_not_found_naming_the_key(client: httpx.AsyncClient, unique: str) -> None:
    for answer in (
        await client.get(f"/v1/experiments/nope-{unique}", headers=auth("read")),
        await client.post(f"/v1/experiments/nope-{unique}/start", headers=auth("admin")),
        await client.post(f"/v1/experiments/nope-{unique}/stop", headers=auth("admin")),
    ):
        assert answer.status_code == 404
        assert _fields(answer) == ["key"]


async def test_a_malformed_key_in_the_path_is_invalid(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/experiments/bad:key", headers=auth("read"))
    assert answer.status_code == 422
    assert _fields(answer) == ["path.key"]


async def test_lifecycle_runs_draft_to_running_to_stopped_once(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key, start=False)

    started = await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
    assert started.status_code == 200
    assert started.json()["status"] == "running"
    started_at = datetime.fromisoformat(started.json()["started_at"])
    assert abs(started_at - datetime.now(UTC)) < timedelta(seconds=30)

    again = await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
    assert again.status_code == 200
    assert again.json() == started.json()

    stopped = await client.post(f"/v1/experiments/{key}/stop", headers=auth("admin"))
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["started_at"] == started.json()["started_at"]
    assert (await client.post(f"/v1/experiments/{key}/stop", headers=auth("admin"))).json() == stopped.json()

    restart = await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
    assert restart.status_code == 409
    assert _fields(restart) == ["status"]
    stored = await client.get(f"/v1/experiments/{key}", headers=auth("read"))
    assert stored.json()["status"] == "stopped"
