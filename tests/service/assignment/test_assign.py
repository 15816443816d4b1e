"""/v1/assign over HTTP, against the real Redis and Kafka."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from scipy.stats import chisquare

from services.assignment.config import AssignmentSettings
from splitstream.evaluation import exposure_event_id
from splitstream.events import Exposure, decode
from splitstream.hashing import bucket, variant_index
from tests.conftest import auth
from tests.service.assignment.conftest import RunApp, create_experiment, read_topic


async def _assign(client: httpx.AsyncClient, key: str, user_id: str, **params: Any) -> dict[str, Any]:
    answer = await client.get(
        "/v1/assign", params={"experiment": key, "user_id": user_id, **params}, headers=auth("ingest")
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _hashed(experiment: dict[str, Any], user_id: str) -> str:
    weights = [variant["weight"] for variant in experiment["variants"]]
    index = variant_index(weights, experiment["coverage"], bucket(experiment["salt"], user_id))
    assert index is not None
    return str(experiment["variants"][index]["key"])


async def test_a_running_experiment_assigns_and_logs_exactly_one_exposure(
    client: httpx.AsyncClient, settings: AssignmentSettings, unique: str
) -> None:
    key = f"exp-{unique}"
    experiment = await create_experiment(client, key)

    answer = await _assign(client, key, "user-1")

    expected_variant = _hashed(experiment, "user-1")
    assert answer == {"experiment": key, "user_id": "user-1", "variant": expected_variant, "payload": None,
                      "in_experiment": True, "reason": "hashed", "phase": 1, "exposure_logged": True,
                      "exposure": None}
    records = await read_topic(settings)
    assert len(records) == 1
    assert records[0].key == b"user-1"
    exposure = decode(records[0].value)
    assert isinstance(exposure, Exposure)
    assert (exposure.experiment, exposure.variant, exposure.user_id) == (key, expected_variant, "user-1")
    assert exposure.event_id == exposure_event_id(key, 1, "user-1")
    assert exposure.phase == 1
    assert abs(exposure.timestamp - datetime.now(UTC)) < timedelta(seconds=30)


async def test_a_returning_user_is_sticky_and_logged_once_even_on_another_instance(
    client: httpx.AsyncClient, run_app: RunApp, settings: AssignmentSettings, unique: str
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    first = await _assign(client, key, "user-1")
    again = await _assign(client, key, "user-1")
    async with run_app() as other:
        elsewhere = await _assign(other, key, "user-1")
    await _assign(client, key, "user-2")

    ids = Counter(decode(record.value).event_id for record in await read_topic(settings))

    assert ids == {exposure_event_id(key, 1, "user-1"): 1, exposure_event_id(key, 1, "user-2"): 1}
    assert (first["reason"], again["reason"], elsewhere["reason"]) == ("hashed", "sticky", "sticky")
    assert first["variant"] == again["variant"] == elsewhere["variant"]
    assert again["exposure_logged"] and elsewhere["exposure_logged"]


async def test_without_log_exposure_nothing_reaches_kafka(
    client: httpx.AsyncClient, settings: AssignmentSettings, unique: str
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)

    answer = await _assign(client, key, "user-1", log_exposure="false")

    assert (answer["in_experiment"], answer["exposure_logged"]) == (True, False)
    assert await read_topic(settings) == []
    # The exposure to send when the payload is shown: exactly what the assignment would have logged itself.
    exposure = Exposure.model_validate(answer["exposure"])
    assert (exposure.event_id, exposure.variant, exposure.phase) == (
        exposure_event_id(key, 1, "user-1"), answer["variant"], 1
    )


async def test_the_same_user_gets_the_same_variant_across_calls_and_instances(
    client: httpx.AsyncClient, run_app: RunApp, unique: str
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key, (0.25, 0.5, 0.25))
    users = [f"user-{index}" for index in range(60)]

    first = [(await _assign(client, key, user, log_exposure="false"))["variant"] for user in users]
    second = [(await _assign(client, key, user, log_exposure="false"))["variant"] for user in users]
    async with run_app() as fresh:
        third = [(await _assign(fresh, key, user, log_exposure="false"))["variant"] for user in users]

    assert first == second == third
    assert len(set(first)) == 3


async def test_the_split_follows_the_weights(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    weights = (0.25, 0.5, 0.25)
    experiment = await create_experiment(client, key, weights)
    users = [f"user-{unique}-{index}" for index in range(6_000)]
    gate = asyncio.Semaphore(64)

    async def variant_of(user: str) -> str:
        async with gate:
            return str((await _assign(client, key, user, log_exposure="false"))["variant"])

    counts = Counter(await asyncio.gather(*(variant_of(user) for user in users)))

    names = [variant["key"] for variant in experiment["variants"]]
    expected = [len(users) * weight / sum(weights) for weight in weights]
    observed = [counts[name] for name in names]
    assert sum(observed) == len(users)
    # Under a correct hash the statistic is chi-square with 2 degrees of freedom; p < 1e-4 would be a 1-in-10^4 fluke.
    assert chisquare(observed, expected).pvalue > 1e-4, observed


@pytest.mark.parametrize("stop", [False, True], ids=["draft", "stopped"])
async def test_outside_a_running_experiment_users_get_control_and_no_exposure(
    client: httpx.AsyncClient, settings: AssignmentSettings, unique: str, stop: bool
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key, start=stop)
    if stop:
        assert (await client.post(f"/v1/experiments/{key}/stop", headers=auth("admin"))).status_code == 200

    answers = [await _assign(client, key, f"user-{index}") for index in range(20)]

    assert {(a["variant"], a["in_experiment"], a["reason"], a["exposure_logged"]) for a in answers} == {
        ("control", False, "not_running", False)
    }
    assert await read_topic(settings) == []


async def test_starting_takes_effect_at_once_on_the_same_instance(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key, start=False)
    assert (await _assign(client, key, "user-1", log_exposure="false"))["in_experiment"] is False

    await client.post(f"/v1/experiments/{key}/start", headers=auth("admin"))

    assert (await _assign(client, key, "user-1", log_exposure="false"))["in_experiment"] is True


async def test_an_unknown_experiment_is_not_found(client: httpx.AsyncClient, unique: str) -> None:
    answer = await client.get("/v1/assign", params={"experiment": f"nope-{unique}", "user_id": "u"},
                              headers=auth("ingest"))
    assert answer.status_code == 404
    assert [f["field"] for f in answer.json()["error"]["fields"]] == ["experiment"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"experiment": "exp"}, "query.user_id"),
        ({"experiment": "exp", "user_id": ""}, "query.user_id"),
        ({"experiment": "exp", "user_id": "user\n1"}, "query.user_id"),
        ({"experiment": "exp", "user_id": "u" * 257}, "query.user_id"),
        ({"user_id": "user-1"}, "query.experiment"),
        ({"experiment": "bad key", "user_id": "user-1"}, "query.experiment"),
        ({"experiment": "exp", "user_id": "user-1", "log_exposure": "maybe"}, "query.log_exposure"),
    ],
    ids=["missing-user", "empty-user", "control-char", "too-long", "missing-experiment", "bad-experiment",
         "bad-flag"],
)
async def test_invalid_query_parameters_are_named(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await client.get("/v1/assign", params=params, headers=auth("ingest"))
    assert answer.status_code == 422
    assert [f["field"] for f in answer.json()["error"]["fields"]] == [field]


async def test_assign_needs_the_ingest_scope(client: httpx.AsyncClient, unique: str) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    params = {"experiment": key, "user_id": "user-1", "log_exposure": "false"}

    assert (await client.get("/v1/assign", params=params)).status_code == 401
    assert (await client.get("/v1/assign", params=params, headers=auth("read"))).status_code == 403
    assert (await client.get("/v1/assign", params=params, headers=auth("ingest"))).status_code == 200


async def test_a_remembered_answer_gives_way_at_once_to_any_change_of_the_definitions(
    client: httpx.AsyncClient, unique: str
) -> None:
    key = f"exp-{unique}"
    await create_experiment(client, key)
    request = {"user_id": "user-1", "attributes": {"country": "CN"}, "experiments": [key]}

    async def reason_and_variant() -> tuple[str, str]:
        answer = await client.post("/v1/assign", json=request, headers=auth("ingest"))
        assert answer.status_code == 200, answer.text
        [assignment] = answer.json()["assignments"]
        return assignment["reason"], assignment["variant"]

    _, variant = await reason_and_variant()
    for _ in range(3):  # a returning user: from the second on, the same answer may be given again as it is
        assert await reason_and_variant() == ("sticky", variant)
    for action, expected in (("pause", "not_running"), ("start", "sticky")):
        assert (await client.post(f"/v1/experiments/{key}/{action}", headers=auth("admin"))).status_code == 200
        assert (await reason_and_variant())[0] == expected
    shipped = await client.post(f"/v1/experiments/{key}/ship", json={"variant": "treatment-1"}, headers=auth("admin"))
    assert shipped.status_code == 200, shipped.text
    assert await reason_and_variant() == ("shipped", "treatment-1")
