"""Experiment administration over HTTP, against the real Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.conftest import auth
from tests.service.assignment.conftest import create_experiment, spec


def _fields(answer: httpx.Response) -> list[str]:
    return [field["field"] for field in answer.json()["error"]["fields"]]


async def test_create_stores_a_draft_salted_by_its_key(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    answer = await client.post("/v1/experiments", json=spec(key), headers=auth("admin"))

    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert set(created) == {
        "key", "name", "hypothesis", "kind", "variants", "coverage", "unit", "targeting", "layer", "holdouts",
        "forced", "ramp", "metrics", "analysis", "segments", "status", "salt", "hash_version", "phase", "version",
        "created_at",
        "updated_at", "started_at", "phase_started_at", "shipped_variant", "ended_at", "layer_ranges",
    }
    assert created["key"] == key
    assert (created["version"], created["phase"], created["hash_version"], created["kind"]) == (1, 1, 1, "content")
    assert created["variants"] == [{"key": "control", "weight": 0.5, "name": "", "payload": None},
                                   {"key": "treatment-1", "weight": 0.5, "name": "", "payload": None}]
    assert created["metrics"] == [{"key": "purchased", "type": "binomial", "event": "purchase", "role": "secondary",
                                   "higher_is_better": True, "margin": 0.0, "cap": None,
                                   "conversion_window_hours": None, "denominator_event": None,
                                   "denominator_aggregate": "count", "cuped": True}]
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
    again = await client.post("/v1/experiments", json=spec(key, (0.25, 0.75)), headers=auth("admin"))

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert _fields(again) == ["key"]
    kept = await client.get(f"/v1/experiments/{key}", headers=auth("read"))
    assert [v["weight"] for v in kept.json()["variants"]] == [0.5, 0.5]


def _with(experiment_key: str, /, **changes: Any) -> dict[str, Any]:
    return {**spec(experiment_key), **changes}


@pytest.mark.parametrize(
    ("make_body", "field"),
    [
        (lambda k: _with(k, variants=[{"key": "a", "weight": 1}, {"key": "b", "weight": 0}]), "body.variants.1.weight"),
        (lambda k: _with(k, variants=[{"key": "a", "weight": 1}]), "body.variants"),
        (lambda k: _with(k, variants=[{"key": "a"}, {"key": "a"}]), "body.variants"),
        (lambda k: _with(k, variants=[{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.4}]), "body.variants"),
        (lambda k: _with(k, variants=[{"key": "a", "weight": 0.5}, {"key": "b"}]), "body.variants"),
        (lambda k: _with(k, coverage=1.5), "body.coverage"),
        (lambda k: _with(k, coverage=-0.1), "body.coverage"),
        (lambda k: _with(k, targeting=[{"attribute": "country", "op": "like", "value": "C%"}]), "body.targeting.0.op"),
        (lambda k: _with(k, targeting=[{"attribute": "n", "op": "gt", "value": "many"}]), "body.targeting.0.value"),
        (lambda k: _with(k, targeting=[{"attribute": "v", "op": "version_gte", "value": "x.y"}]),
         "body.targeting.0.value"),
        (lambda k: _with(k, targeting=[{"attribute": "c", "op": "in", "value": "CN"}]), "body.targeting.0.value"),
        (lambda k: _with(k, forced={"qa-1": "nope"}), "body.forced"),
        (lambda k: _with(k, ramp=[{"at": "2026-02-01T00:00:00Z", "coverage": 0.5},
                                  {"at": "2026-01-01T00:00:00Z", "coverage": 1}]), "body.ramp"),
        (lambda k: _with(k, layer={"key": f"no-layer-{k}", "share": 0.5}), "body.layer.key"),
        (lambda k: _with(k, layer={"key": "l", "share": 0}), "body.layer.share"),
        (lambda k: _with(k, holdouts=[f"no-holdout-{k}"]), "body.holdouts.0"),
        (lambda k: _with(k, kind="email"), "body.kind"),
        (lambda k: _with(k, metrics=[{"key": "m", "type": "median", "event": "e"}]), "body.metrics.0.type"),
        (lambda k: _with(k, metrics=[{"key": "m", "type": "mean", "event": "e"}] * 2), "body.metrics"),
        (lambda k: _with(k, key="has space"), "body.key"),
        (lambda k: _with(k, salt=""), "body.salt"),
        (lambda k: _with(k, colour="blue"), "body.colour"),
        (lambda k: {"variants": spec(k)["variants"]}, "body.key"),
        (lambda k: _with(k, metrics=[{"key": "ctr", "type": "ratio", "event": "click"}]),
         "body.metrics.0.denominator_event"),
        (lambda k: _with(k, metrics=[{"key": "m", "type": "mean", "event": "e", "denominator_event": "d"}]),
         "body.metrics.0.denominator_event"),
        (lambda k: _with(k, metrics=[{"key": "r", "type": "ratio", "event": "e", "denominator_event": "d",
                                      "denominator_aggregate": "median"}]), "body.metrics.0.denominator_aggregate"),
        (lambda k: _with(k, analysis={"cuped_lookback_days": 31}), "body.analysis.cuped_lookback_days"),
        (lambda k: _with(k, analysis={"difference": "ratio"}), "body.analysis.difference"),
    ],
    ids=["zero-weight", "one-variant", "duplicate-variants", "weights-not-one", "some-weights", "coverage-above-1",
         "coverage-below-0", "bad-operator", "non-numeric-bound", "bad-version", "in-without-list", "forced-unknown",
         "ramp-out-of-order", "unknown-layer", "zero-share", "unknown-holdout", "unknown-kind", "bad-metric-type",
         "duplicate-metrics", "bad-key", "empty-salt", "unknown-field", "missing-key", "ratio-without-denominator",
         "denominator-of-a-mean", "bad-denominator-aggregate", "lookback-past-30-days", "bad-difference"],
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

    assert started.json()["ended_at"] is None
    ended_at = datetime.fromisoformat(stopped.json()["ended_at"])
    assert started_at <= ended_at and abs(ended_at - datetime.now(UTC)) < timedelta(seconds=30)

    restart = await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
    assert restart.status_code == 409
    assert _fields(restart) == ["status"]
    stored = await client.get(f"/v1/experiments/{key}", headers=auth("read"))
    assert stored.json()["status"] == "stopped"
    # Shipping after the stop keeps the end the statistics froze at.
    shipped = await client.post(f"/v1/experiments/{key}/ship", json={"variant": "control"}, headers=auth("admin"))
    assert shipped.status_code == 200, shipped.text
    assert (shipped.json()["status"], shipped.json()["ended_at"]) == ("shipped", stopped.json()["ended_at"])


async def test_every_change_is_a_version_with_an_audit_entry(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key, start=False)
    await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
    updated = await client.put(f"/v1/experiments/{key}", json={**spec(key), "coverage": 0.3}, headers=auth("admin"))
    await client.post(f"/v1/experiments/{key}/pause", headers=auth("admin"))
    await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
    assert updated.status_code == 200 and updated.json()["version"] == 3

    history = await client.get(f"/v1/experiments/{key}/history", headers=auth("read"))

    assert history.status_code == 200
    entries = history.json()["entries"]
    assert [(e["version"], e["action"]) for e in entries] == [
        (1, "create"), (2, "start"), (3, "update"), (4, "pause"), (5, "start"),
    ]
    assert {e["actor"]["scope"] for e in entries} == {"admin"}
    assert len({e["actor"]["key_id"] for e in entries}) == 1 and "test-admin-key" not in history.text
    assert entries[2]["changes"] == {"coverage": {"before": 1.0, "after": 0.3}}
    assert entries[1]["changes"]["status"] == {"before": "draft", "after": "running"}
    assert set(entries[1]["changes"]) == {"status", "started_at"}
    assert entries[0]["changes"]["key"] == {"before": None, "after": key}
    current = await client.get(f"/v1/experiments/{key}", headers=auth("read"))
    assert (current.json()["version"], current.json()["status"]) == (5, "running")


async def test_the_definitions_topic_carries_the_latest_version_keyed_by_experiment(
    client: httpx.AsyncClient, settings: Any, unique: str
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    consumer = AIOKafkaConsumer(
        settings.definitions_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records = []
        async with asyncio.timeout(10):
            while len([r for r in records if r.key == key.encode()]) < 2:
                batches = await consumer.getmany(timeout_ms=200)
                records.extend(record for batch in batches.values() for record in batch)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC,
                                                                     settings.definitions_topic)])
        finally:
            await admin.close()
    finally:
        await consumer.stop()
    ours = [orjson.loads(r.value) for r in records if r.key == key.encode()]
    assert [(d["experiment"]["version"], d["audit"]["action"]) for d in ours] == [(1, "create"), (2, "start")]
    assert ours[-1]["experiment"]["status"] == "running"
    configs = {name: value for name, value, *_ in described[0].resources[0][4]}
    assert configs["cleanup.policy"] == "compact"


async def test_started_experiments_change_variants_only_in_a_new_phase(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    three = {**spec(key, (0.25, 0.25, 0.5))}
    refused = await client.put(f"/v1/experiments/{key}", json=three, headers=auth("admin"))
    mismatched = await client.put(f"/v1/experiments/{key}", json=spec(f"other-{unique}"), headers=auth("admin"))
    accepted = await client.put(f"/v1/experiments/{key}", json={**three, "new_phase": True}, headers=auth("admin"))

    assert refused.status_code == 422 and _fields(refused) == ["body.variants"]
    assert mismatched.status_code == 422 and _fields(mismatched) == ["body.key"]
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["phase"], len(accepted.json()["variants"])) == (2, 3)
    await client.post(f"/v1/experiments/{key}/stop", headers=auth("admin"))
    frozen = await client.put(f"/v1/experiments/{key}", json=three, headers=auth("admin"))
    assert frozen.status_code == 409 and _fields(frozen) == ["status"]


async def test_config_serves_every_definition_with_an_etag(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    await client.post("/v1/layers", json={"key": f"layer-{unique}"}, headers=auth("admin"))

    first = await client.get("/v1/config", headers=auth("ingest"))
    assert first.status_code == 200
    assert [e["key"] for e in first.json()["experiments"]] == [key]
    assert [layer["key"] for layer in first.json()["layers"]] == [f"layer-{unique}"]
    etag = first.headers["etag"]
    same = await client.get("/v1/config", headers={**auth("ingest"), "If-None-Match": etag})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)

    await client.post(f"/v1/experiments/{key}/pause", headers=auth("admin"))
    changed = await client.get("/v1/config", headers={**auth("ingest"), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["experiments"][0]["status"] == "paused"
    assert (await client.get("/v1/config", headers=auth("read"))).status_code == 403


async def test_layers_and_holdouts_refuse_bad_bodies_naming_the_field(client: httpx.AsyncClient, unique: str) -> None:
    cases = [
        ("/v1/layers", {"key": "bad key"}, 422, "body.key"),
        ("/v1/layers", {"key": f"l-{unique}", "colour": "red"}, 422, "body.colour"),
        ("/v1/holdouts", {"key": f"h-{unique}", "share": 0.6}, 422, "body.share"),
        ("/v1/holdouts", {"key": f"h-{unique}", "share": 0.1, "scope": "planet"}, 422, "body.scope"),
        ("/v1/holdouts", {"key": f"h-{unique}"}, 422, "body.share"),
    ]
    for path, body, status_code, field in cases:
        answer = await client.post(path, json=body, headers=auth("admin"))
        assert answer.status_code == status_code, (body, answer.text)
        assert _fields(answer) == [field], (body, answer.json())
    assert (await client.post("/v1/layers", json={"key": f"l-{unique}"}, headers=auth("admin"))).status_code == 201
    again = await client.post("/v1/layers", json={"key": f"l-{unique}"}, headers=auth("admin"))
    assert again.status_code == 409 and _fields(again) == ["body.key"]
    listed = await client.get("/v1/layers", headers=auth("read"))
    assert [layer["key"] for layer in listed.json()["layers"]] == [f"l-{unique}"]
    assert (await client.post("/v1/holdouts", json={"key": "h", "share": 0.1}, headers=auth("read"))).status_code == 403
