"""POST /v1/assign over HTTP: targeting, layers, holdouts, forced users, ramps, shipping, sticky under change."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from services.assignment.config import AssignmentSettings
from splitstream.events import Exposure, decode
from tests.conftest import auth
from tests.service.assignment.conftest import RunApp, read_topic, spec


async def _define(client: httpx.AsyncClient, body: dict[str, Any], *, start: bool = True) -> dict[str, Any]:
    created = await client.post("/v1/experiments", json=body, headers=auth("admin"))
    assert created.status_code == 201, created.text
    if not start:
        return created.json()  # type: ignore[no-any-return]
    started = await client.post(f"/v1/experiments/{body['key']}/start", headers=auth("admin"))
    assert started.status_code == 200, started.text
    return started.json()  # type: ignore[no-any-return]


async def _assign(client: httpx.AsyncClient, user_id: str, **body: Any) -> dict[str, dict[str, Any]]:
    answer = await client.post("/v1/assign", json={"user_id": user_id, **body}, headers=auth("ingest"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["user_id"] == user_id
    return {a["experiment"]: a for a in answer.json()["assignments"]}


async def _many(client: httpx.AsyncClient, users: list[str], **body: Any) -> list[dict[str, dict[str, Any]]]:
    gate = asyncio.Semaphore(32)

    async def one(user: str) -> dict[str, dict[str, Any]]:
        async with gate:
            return await _assign(client, user, **body)

    return list(await asyncio.gather(*(one(user) for user in users)))


async def test_every_live_experiment_answers_with_variant_payload_and_reason(
    client: httpx.AsyncClient, settings: AssignmentSettings, unique: str
) -> None:
    title = {**spec(f"title-{unique}"), "variants": [
        {"key": "control", "payload": {"title": "Ten tips"}}, {"key": "question", "payload": {"title": "Why?"}},
    ]}
    await _define(client, title)
    await _define(client, {**spec(f"cn-only-{unique}"),
                           "targeting": [{"attribute": "country", "op": "in", "value": ["CN", "SG"]}]})
    await _define(client, spec(f"draft-{unique}"), start=False)

    got = await _assign(client, "user-1", attributes={"country": "US"})

    assert set(got) == {f"title-{unique}", f"cn-only-{unique}"}  # the draft is not live
    shown = got[f"title-{unique}"]
    assert shown["reason"] == "hashed" and shown["in_experiment"] and shown["exposure_logged"]
    assert shown["payload"] == {"title": "Ten tips" if shown["variant"] == "control" else "Why?"}
    assert got[f"cn-only-{unique}"] | {"payload": None} == {
        "experiment": f"cn-only-{unique}", "variant": "control", "payload": None, "in_experiment": False,
        "reason": "not_targeted", "phase": 1, "exposure_logged": False, "exposure": None,
    }
    logged = [decode(record.value) for record in await read_topic(settings)]
    assert [(e.experiment, e.user_id) for e in logged if isinstance(e, Exposure)] == [(f"title-{unique}", "user-1")]


async def test_targeting_with_numbers_booleans_and_versions(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    await _define(client, {**spec(key), "targeting": [
        {"attribute": "is_new", "op": "eq", "value": True},
        {"attribute": "app_version", "op": "version_gte", "value": "2.10.0"},
        {"attribute": "orders", "op": "lt", "value": 3},
        {"attribute": "tier", "op": "not_in", "value": ["vip"]},
    ]})
    cases = [
        ({"is_new": True, "app_version": "2.10.1", "orders": 0}, True),
        ({"is_new": "true", "app_version": "v2.10", "orders": "2", "tier": "gold"}, True),
        ({"is_new": True, "app_version": "2.9.9", "orders": 0}, False),
        ({"is_new": False, "app_version": "3.0.0", "orders": 0}, False),
        ({"is_new": True, "app_version": "3.0.0", "orders": 3}, False),
        ({"is_new": True, "app_version": "3.0.0", "orders": 0, "tier": "vip"}, False),
        ({"app_version": "3.0.0", "orders": 0}, False),
    ]
    for attributes, targeted in cases:
        reason = (await _assign(client, "user-1", attributes=attributes, log_exposure=False))[key]["reason"]
        assert (reason != "not_targeted") is targeted, (attributes, reason)


async def test_experiments_of_one_layer_never_share_a_user(client: httpx.AsyncClient, unique: str) -> None:
    layer = f"home-{unique}"
    assert (await client.post("/v1/layers", json={"key": layer}, headers=auth("admin"))).status_code == 201
    first = await _define(client, {**spec(f"a-{unique}"), "layer": {"key": layer, "share": 0.5}})
    second = await _define(client, {**spec(f"b-{unique}"), "layer": {"key": layer, "share": 0.3}})
    assert (first["layer_ranges"], second["layer_ranges"]) == ([[0, 5000]], [[5000, 8000]])

    answers = await _many(client, [f"user-{i}" for i in range(2000)], log_exposure=False)

    entered = Counter(
        tuple(sorted(key for key, a in got.items() if a["in_experiment"])) for got in answers
    )
    assert set(entered) <= {(), (f"a-{unique}",), (f"b-{unique}",)}
    assert abs(entered[(f"a-{unique}",)] / 2000 - 0.5) < 0.05
    assert abs(entered[(f"b-{unique}",)] / 2000 - 0.3) < 0.05
    assert {got[f"a-{unique}"]["reason"] for got in answers} == {"hashed", "layer_excluded"}

    full = await client.post("/v1/experiments", json={**spec(f"c-{unique}"), "layer": {"key": layer, "share": 0.25}},
                             headers=auth("admin"))
    assert full.status_code == 422
    assert [f["field"] for f in full.json()["error"]["fields"]] == ["body.layer.share"]
    assert "20.00% of the layer is free" in full.json()["error"]["fields"][0]["reason"]
    # Stopping an experiment gives its buckets back to the layer.
    await client.post(f"/v1/experiments/b-{unique}/stop", headers=auth("admin"))
    refill = await _define(client, {**spec(f"c-{unique}"), "layer": {"key": layer, "share": 0.25}})
    assert refill["layer_ranges"] == [[5000, 7500]]


async def test_holdouts_keep_their_users_out_of_the_experiments_they_cover(
    client: httpx.AsyncClient, unique: str
) -> None:
    everywhere, campaign = f"global-{unique}", f"push-{unique}"
    for body in ({"key": everywhere, "share": 0.1, "scope": "global"}, {"key": campaign, "share": 0.2}):
        assert (await client.post("/v1/holdouts", json=body, headers=auth("admin"))).status_code == 201
    await _define(client, {**spec(f"push-copy-{unique}"), "holdouts": [campaign]})
    await _define(client, spec(f"title-{unique}"))

    answers = await _many(client, [f"user-{i}" for i in range(3000)], log_exposure=False)

    in_push = Counter(got[f"push-copy-{unique}"]["reason"] for got in answers)
    in_title = Counter(got[f"title-{unique}"]["reason"] for got in answers)
    # Independent salts: about 10% + 20% - 2% of users are held out of the campaign, 10% out of the title test.
    assert abs(in_push["holdout"] / 3000 - 0.28) < 0.03, in_push
    assert abs(in_title["holdout"] / 3000 - 0.10) < 0.02, in_title
    held = [got for got in answers if got[f"title-{unique}"]["reason"] == "holdout"]
    assert all(got[f"push-copy-{unique}"]["reason"] == "holdout" for got in held)  # the global one covers both
    assert {got[f"title-{unique}"]["variant"] for got in held} == {"control"}


async def test_forced_users_see_their_variant_even_in_a_draft_and_are_never_logged(
    client: httpx.AsyncClient, settings: AssignmentSettings, unique: str
) -> None:
    key = f"exp-{unique}"
    await _define(client, {**spec(key), "forced": {"qa-1": "treatment-1"}, "coverage": 0}, start=False)
    draft = await _assign(client, "qa-1", experiments=[key])
    await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
    running = await _assign(client, "qa-1", experiments=[key])
    outsider = await _assign(client, "user-1", experiments=[key])

    for got in (draft, running):
        assert (got[key]["variant"], got[key]["reason"], got[key]["in_experiment"]) == ("treatment-1", "forced", False)
    assert outsider[key]["reason"] == "not_in_coverage"
    assert await read_topic(settings) == []


async def test_a_ramp_step_in_force_sets_the_coverage_and_ranges_keep_their_start(
    client: httpx.AsyncClient, unique: str
) -> None:
    key = f"exp-{unique}"
    past, future = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(days=30)
    ramp = [{"at": past.isoformat(), "coverage": 0.1}, {"at": future.isoformat(), "coverage": 1.0}]
    await _define(client, {**spec(key), "ramp": ramp})
    users = [f"user-{i}" for i in range(3000)]

    small = await _many(client, users, experiments=[key], log_exposure=False)
    covered = {u: got[key]["variant"] for u, got in zip(users, small, strict=True) if got[key]["in_experiment"]}
    assert abs(len(covered) / len(users) - 0.1) < 0.02

    widened = await client.put(f"/v1/experiments/{key}", headers=auth("admin"), json={
        **spec(key), "ramp": [{"at": past.isoformat(), "coverage": 0.5}],
    })
    assert widened.status_code == 200, widened.text
    # Fresh ids too: stickiness must not be what keeps the first 10% in place.
    fresh_users = [f"fresh-{i}" for i in range(3000)]
    before = await _many(client, fresh_users[:1500], experiments=[key], log_exposure=False)
    assert all(got[key]["reason"] in {"hashed", "not_in_coverage"} for got in before)
    larger = await _many(client, users, experiments=[key], log_exposure=False)
    now_in = {u: got[key]["variant"] for u, got in zip(users, larger, strict=True) if got[key]["in_experiment"]}
    assert abs(len(now_in) / len(users) - 0.5) < 0.03
    assert all(now_in[u] == variant for u, variant in covered.items())


async def test_a_weight_change_keeps_assigned_users_and_a_new_phase_rebuckets(
    client: httpx.AsyncClient, unique: str
) -> None:
    key = f"exp-{unique}"
    await _define(client, spec(key))
    users = [f"user-{i}" for i in range(400)]
    first = {u: got[key]["variant"] for u, got in zip(users, await _many(client, users), strict=True)}

    tilted = {**spec(key), "variants": [{"key": "control", "weight": 0.1}, {"key": "treatment-1", "weight": 0.9}]}
    assert (await client.put(f"/v1/experiments/{key}", json=tilted, headers=auth("admin"))).status_code == 200
    kept = await _many(client, users)
    newcomers = await _many(client, [f"new-{i}" for i in range(400)])

    assert {u: got[key]["variant"] for u, got in zip(users, kept, strict=True)} == first
    assert {got[key]["reason"] for got in kept} == {"sticky"}
    assert sum(got[key]["variant"] == "treatment-1" for got in newcomers) > 320

    phased = await client.put(f"/v1/experiments/{key}", json={**tilted, "new_phase": True}, headers=auth("admin"))
    assert phased.status_code == 200 and phased.json()["phase"] == 2
    rebucketed = await _many(client, users)
    assert {(got[key]["reason"], got[key]["phase"]) for got in rebucketed} == {("hashed", 2)}
    assert sum(got[key]["variant"] == "treatment-1" for got in rebucketed) > 320


async def test_shipping_gives_everyone_the_winner_without_counting_them(
    client: httpx.AsyncClient, settings: AssignmentSettings, unique: str
) -> None:
    key = f"exp-{unique}"
    await _define(client, {**spec(key), "targeting": [{"attribute": "country", "op": "eq", "value": "CN"}]})
    shipped = await client.post(f"/v1/experiments/{key}/ship", json={"variant": "treatment-1"}, headers=auth("admin"))
    assert shipped.status_code == 200, shipped.text
    assert (shipped.json()["status"], shipped.json()["shipped_variant"]) == ("shipped", "treatment-1")

    answers = await _many(client, [f"user-{i}" for i in range(50)], attributes={"country": "CN"})
    elsewhere = await _assign(client, "user-1", attributes={"country": "US"})

    assert {(got[key]["variant"], got[key]["reason"], got[key]["in_experiment"]) for got in answers} == {
        ("treatment-1", "shipped", False)
    }
    assert elsewhere[key]["reason"] == "not_targeted"
    assert await read_topic(settings) == []
    unknown = await client.post(f"/v1/experiments/{key}/ship", json={"variant": "nope"}, headers=auth("admin"))
    assert [f["field"] for f in unknown.json()["error"]["fields"]] == ["body.variant"]


async def test_a_change_on_one_instance_reaches_another_within_a_second(
    client: httpx.AsyncClient, run_app: RunApp, unique: str
) -> None:
    key = f"exp-{unique}"
    async with run_app(catalog_resync_seconds=600) as other:  # only the pub/sub message can tell it
        await _define(client, spec(key), start=False)
        await asyncio.sleep(0.3)
        assert (await _assign(other, "user-1", experiments=[key]))[key]["reason"] == "not_running"
        await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))
        started = asyncio.get_running_loop().time()
        while (await _assign(other, "user-1", experiments=[key], log_exposure=False))[key]["reason"] != "hashed":
            assert asyncio.get_running_loop().time() - started < 1.0, "the change took over a second to arrive"
            await asyncio.sleep(0.02)


async def test_bad_assign_bodies_are_named(client: httpx.AsyncClient, unique: str) -> None:
    cases = [
        ({}, "body.user_id"),
        ({"user_id": ""}, "body.user_id"),
        ({"user_id": "u", "attributes": {"bad name": 1}}, "body.attributes.bad name.[key]"),
        ({"user_id": "u", "attributes": {"country": ["CN"]}}, "body.attributes.country"),
        ({"user_id": "u", "experiments": ["bad key"]}, "body.experiments.0"),
        ({"user_id": "u", "experiments": [f"nope-{unique}"]}, "experiments.0"),
        ({"user_id": "u", "log_exposure": "maybe"}, "body.log_exposure"),
    ]
    for body, field in cases:
        answer = await client.post("/v1/assign", json=body, headers=auth("ingest"))
        assert answer.status_code in {404, 422}, (body, answer.text)
        assert field in [f["field"] for f in answer.json()["error"]["fields"]], (body, answer.json())


async def test_a_body_that_is_not_json_is_a_400_and_an_oversized_one_a_413(client: httpx.AsyncClient) -> None:
    broken = await client.post("/v1/assign", content=b'{"user_id": ', headers=auth("ingest"))
    huge = await client.post("/v1/assign", json={"user_id": "u", "attributes": {"a": "x" * 70_000}},
                             headers=auth("ingest"))
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "malformed_json")
    assert [f["field"] for f in broken.json()["error"]["fields"]] == ["body"]
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "payload_too_large")


async def test_the_hot_path_is_described_in_openapi_and_takes_a_query_key(
    client: httpx.AsyncClient, unique: str
) -> None:
    document = (await client.get("/openapi.json")).json()
    described = document["paths"]["/v1/assign"]
    assert set(described) == {"get", "post"}
    request_schema = described["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert document["components"]["schemas"][request_schema.rsplit("/", 1)[-1]]["required"] == ["user_id"]

    key = f"exp-{unique}"
    await _define(client, spec(key))
    ingest_key = auth("ingest")["Authorization"].removeprefix("Bearer ")
    admin_key = auth("admin")["Authorization"].removeprefix("Bearer ")
    body = {"user_id": "u", "experiments": [key], "log_exposure": False}
    by_query = await client.post(f"/v1/assign?api_key={ingest_key}", json=body)
    admin_by_query = await client.post(f"/v1/assign?api_key={admin_key}", json=body)
    read_by_query = await client.post(f"/v1/assign?api_key={auth('read')['Authorization'][7:]}", json=body)
    assert by_query.status_code == 200 and admin_by_query.status_code == 200
    # A query key grants ingest at most: a read key there is worth nothing.
    assert (read_by_query.status_code, read_by_query.json()["error"]["code"]) == (401, "unauthorized")
    metrics = (await client.get("/metrics")).text
    assert 'route="/v1/assign"' in metrics


async def test_an_exposure_carries_the_attributes_its_experiment_keeps_segments_by(
    client: httpx.AsyncClient, settings: AssignmentSettings, unique: str
) -> None:
    key = f"exp-{unique}"
    await _define(client, {**spec(key), "segments": ["channel", "is_new"]})
    await _assign(client, "user-1", experiments=[key],
                  attributes={"channel": "mini_program", "is_new": True, "country": "CN", "tier": None})

    [record] = await read_topic(settings)
    exposure = decode(record.value)
    assert isinstance(exposure, Exposure)
    assert exposure.attributes == {"channel": "mini_program", "is_new": True}
    duplicated = await client.post("/v1/experiments", json={**spec(f"dup-{unique}"), "segments": ["a", "a"]},
                                   headers=auth("admin"))
    assert [f["field"] for f in duplicated.json()["error"]["fields"]] == ["body.segments"]


async def test_one_unreadable_definition_does_not_take_the_others_out_of_the_catalog(
    client: httpx.AsyncClient, settings: AssignmentSettings, redis: Redis, unique: str
) -> None:
    keys = settings.redis_keys
    # Stored by an older version: relative weights, which today's definition refuses.
    await redis.set(keys.experiment(f"old-{unique}"), '{"key": "old", "variants": [{"key": "a", "weight": 1}, '
                    '{"key": "b", "weight": 1}], "salt": "old", "created_at": "2026-01-01T00:00:00Z"}')
    await redis.sadd(keys.experiments, f"old-{unique}")
    await _define(client, spec(f"new-{unique}"))

    got = await _assign(client, "user-1")

    assert set(got) == {f"new-{unique}"}
    assert got[f"new-{unique}"]["reason"] == "hashed"


async def test_a_held_out_user_is_logged_once_in_the_holdout_arm_and_sees_the_control(
    client: httpx.AsyncClient, run_app: RunApp, settings: AssignmentSettings, unique: str
) -> None:
    holdout, key = f"push-hold-{unique}", f"push-copy-{unique}"
    assert (await client.post("/v1/holdouts", json={"key": holdout, "share": 0.5},
                              headers=auth("admin"))).status_code == 201
    await _define(client, {**spec(key), "holdouts": [holdout]})
    users = [f"user-{i}" for i in range(40)]
    previews = await _many(client, users, experiments=[key], log_exposure=False)
    user = next(user for user, got in zip(users, previews, strict=True) if got[key]["reason"] == "holdout")

    first = await _assign(client, user, experiments=[key])
    again = await _assign(client, user, experiments=[key])
    async with run_app() as other:
        elsewhere = await _assign(other, user, experiments=[key])

    for got in (first, again, elsewhere):
        assert (got[key]["variant"], got[key]["reason"], got[key]["in_experiment"]) == ("control", "holdout", True)
        assert got[key]["exposure_logged"]
    exposures = [decode(record.value) for record in await read_topic(settings)]
    assert [(e.user_id, e.variant) for e in exposures if isinstance(e, Exposure)] == [(user, "(holdout)")]
