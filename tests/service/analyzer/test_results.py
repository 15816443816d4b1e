"""GET /v1/experiments/{key}/results against a real Redis holding hand-written sufficient statistics."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.analyzer.config import AnalyzerSettings
from services.analyzer.stats import Comparison, compare, srm_check
from splitstream.experiment import Metric, MetricType
from splitstream.keys import stats_scope
from splitstream.registry import ExperimentRegistry
from splitstream.statistics import Proportion, SampleMoments
from tests.conftest import auth
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

CONVERTED = Metric(key="converted", type=MetricType.BINOMIAL, event="purchase")
REVENUE = Metric(key="revenue", type=MetricType.MEAN, event="purchase")

# users, converted users, Σ revenue, Σ revenue² per variant
STATS = {
    "control": (10_000, 1_000, 96_573.63, 7_352_979.5989),
    "blue": (10_050, 1_090, 104_120.50, 8_101_334.25),
    "green": (9_930, 1_010, 93_002.75, 6_950_120.5),
}


def strict_json(response: httpx.Response) -> Any:
    """Parses the body, failing on NaN/Infinity, which are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the response body")

    return json.loads(response.text, parse_constant=refuse)


def assert_effect(wire: dict[str, Any], ours: Comparison) -> None:
    for name in ("effect", "ci_lower", "ci_upper", "p_value", "std_error", "statistic", "dof"):
        expected = getattr(ours, name)
        assert wire[name] == (None if expected is None else pytest.approx(expected, rel=1e-12)), name
    assert wire["status"] == ours.status.value
    assert wire["method"] == ours.method.value
    assert wire["reason"] == ours.reason


@pytest.fixture
async def stored(create_experiment: CreateExperiment, write_stats: WriteStats) -> str:
    await create_experiment(
        "checkout", [("control", 1), ("blue", 1), ("green", 1)], [CONVERTED, REVENUE]
    )
    for variant, (users, converted, revenue, revenue_sq) in STATS.items():
        await write_stats("checkout", variant, {
            "users": users,
            "converted:sum": converted,
            "converted:sumsq": converted,
            "revenue:sum": revenue,
            "revenue:sumsq": revenue_sq,
        })
    return "checkout"


async def test_results_match_the_engine_for_every_arm_and_metric(client: httpx.AsyncClient, stored: str) -> None:
    response = await client.get(f"/v1/experiments/{stored}/results", headers=auth("read"))
    assert response.status_code == 200, response.text
    body = strict_json(response)

    assert body["experiment"] == stored and body["status"] == "running" and body["alpha"] == 0.05
    assert body["variants"] == [{"key": k, "users": v[0], "weight": pytest.approx(1 / 3)} for k, v in STATS.items()]
    srm = srm_check([v[0] for v in STATS.values()], [1, 1, 1])
    assert body["srm"]["p_value"] == pytest.approx(srm.p_value)
    assert body["srm"]["statistic"] == pytest.approx(srm.statistic)
    assert body["srm"]["status"] == "ok" and body["srm"]["dof"] == 2

    arms = {
        "converted": {k: Proportion(v[0], v[1]) for k, v in STATS.items()},
        "revenue": {k: SampleMoments(v[0], v[2], v[3]) for k, v in STATS.items()},
    }
    assert [m["key"] for m in body["metrics"]] == ["converted", "revenue"]
    for metric in body["metrics"]:
        metric_arms = arms[metric["key"]]
        assert metric["type"] == ("binomial" if metric["key"] == "converted" else "mean")
        assert metric["event"] == "purchase"
        for summary in metric["variants"]:
            arm = metric_arms[summary["key"]]
            assert summary["n"] == arm.n
            assert summary["mean"] == pytest.approx(arm.mean)
            assert summary["variance"] == pytest.approx(arm.variance)
        assert [s["sum"] for s in metric["variants"]] == pytest.approx(
            [v[1] if metric["key"] == "converted" else v[2] for v in STATS.values()]
        )
        assert [c["variant"] for c in metric["comparisons"]] == ["blue", "green"]
        for wire in metric["comparisons"]:
            assert wire["baseline"] == "control"
            ours = compare(metric_arms["control"], metric_arms[wire["variant"]], 0.05)
            assert_effect(wire, ours.relative)
            assert_effect(wire["absolute"], ours.absolute)
            assert wire["status"] == "ok" and wire["absolute"]["status"] == "ok"


async def test_alpha_from_the_query_changes_the_intervals(client: httpx.AsyncClient, stored: str) -> None:
    response = await client.get(f"/v1/experiments/{stored}/results", params={"alpha": 0.2}, headers=auth("read"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["alpha"] == 0.2
    users, converted, _, _ = STATS["control"]
    ours = compare(Proportion(users, converted), Proportion(STATS["blue"][0], STATS["blue"][1]), 0.2)
    assert_effect(body["metrics"][0]["comparisons"][0], ours.relative)


async def test_admin_key_may_read_results(client: httpx.AsyncClient, stored: str) -> None:
    response = await client.get(f"/v1/experiments/{stored}/results", headers=auth("admin"))
    assert response.status_code == 200


@pytest.mark.parametrize("alpha", ["0", "1", "-0.5", "1.5", "nan", "inf", "five"])
async def test_bad_alpha_is_422_naming_the_parameter(client: httpx.AsyncClient, stored: str, alpha: str) -> None:
    response = await client.get(f"/v1/experiments/{stored}/results", params={"alpha": alpha}, headers=auth("read"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == ["query.alpha"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-a-key"}, 401, "unauthorized"),
        (auth("ingest"), 403, "forbidden"),
    ],
)
async def test_results_need_the_read_scope(
    client: httpx.AsyncClient, stored: str, headers: dict[str, str], status: int, code: str
) -> None:
    response = await client.get(f"/v1/experiments/{stored}/results", headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("key", ["no-such-experiment", "checkout:v:control", "ünïcode"])
async def test_unknown_experiment_is_404_naming_the_key(client: httpx.AsyncClient, stored: str, key: str) -> None:
    response = await client.get(f"/v1/experiments/{key}/results", headers=auth("read"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert [f["field"] for f in error["fields"]] == ["key"]


async def test_experiment_without_data_explains_itself(
    client: httpx.AsyncClient, create_experiment: CreateExperiment
) -> None:
    await create_experiment("fresh", [("control", 1), ("treatment", 1)], [CONVERTED, REVENUE])
    response = await client.get("/v1/experiments/fresh/results", headers=auth("read"))
    assert response.status_code == 200, response.text
    body = strict_json(response)
    assert [v["users"] for v in body["variants"]] == [0, 0]
    assert body["srm"]["status"] == "insufficient_data" and body["srm"]["p_value"] is None
    assert body["srm"]["reason"]
    for metric in body["metrics"]:
        assert [v["mean"] for v in metric["variants"]] == [None, None]
        (comparison,) = metric["comparisons"]
        for effect in (comparison, comparison["absolute"]):
            assert effect["status"] == "insufficient_data"
            assert effect["reason"]
            assert effect["effect"] is None and effect["p_value"] is None


async def test_zero_control_rate_reports_the_absolute_difference(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats
) -> None:
    await create_experiment("rare", [("control", 1), ("treatment", 1)], [CONVERTED])
    # Fields that were never incremented are absent from the hash and count as 0.
    await write_stats("rare", "control", {"users": 4000})
    await write_stats("rare", "treatment", {"users": 4020, "converted:sum": 9, "converted:sumsq": 9})
    response = await client.get("/v1/experiments/rare/results", headers=auth("read"))
    assert response.status_code == 200, response.text
    (comparison,) = strict_json(response)["metrics"][0]["comparisons"]
    assert comparison["status"] == "undefined" and comparison["effect"] is None
    assert "control mean" in comparison["reason"]
    ours = compare(Proportion(4000, 0), Proportion(4020, 9))
    assert_effect(comparison["absolute"], ours.absolute)
    assert comparison["absolute"]["method"] in ("pooled_z", "fisher_exact")
    assert comparison["absolute"]["p_value"] is not None


async def test_inconsistent_statistics_are_reported_not_crashed_on(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats
) -> None:
    await create_experiment("broken", [("control", 1), ("treatment", 1)], [CONVERTED])
    await write_stats("broken", "control", {"users": 100, "converted:sum": 10})
    await write_stats("broken", "treatment", {"users": 100, "converted:sum": 130})
    response = await client.get("/v1/experiments/broken/results", headers=auth("read"))
    assert response.status_code == 200, response.text
    (comparison,) = strict_json(response)["metrics"][0]["comparisons"]
    assert comparison["status"] == "invalid_data" and comparison["absolute"]["status"] == "invalid_data"
    assert "'treatment'" in comparison["reason"]


async def test_the_results_read_the_current_phase_only(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, redis: Redis,
    settings: AnalyzerSettings,
) -> None:
    first = await create_experiment("phased", [("control", 1), ("treatment", 1)], [CONVERTED])
    for variant, users in (("control", 500), ("treatment", 520)):
        await write_stats("phased", variant, {"users": users, "converted:sum": 50, "converted:sumsq": 50})
    second = first.model_copy(update={"phase": 2, "version": 2})
    await ExperimentRegistry(redis, settings.redis_keys).replace(second, first)
    for variant, users in (("control", 40), ("treatment", 60)):
        await write_stats(stats_scope("phased", 2), variant, {"users": users, "converted:sum": 4, "converted:sumsq": 4})

    body = strict_json(await client.get("/v1/experiments/phased/results", headers=auth("read")))

    assert body["phase"] == 2
    assert [variant["users"] for variant in body["variants"]] == [40, 60]
    assert [v["sum"] for v in body["metrics"][0]["variants"]] == [4, 4]


async def test_results_carry_an_etag_and_answer_304_while_nothing_changed(
    client: httpx.AsyncClient, stored: str, write_stats: WriteStats
) -> None:
    first = await client.get(f"/v1/experiments/{stored}/results", headers=auth("read"))
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, max-age=1"
    same = await client.get(f"/v1/experiments/{stored}/results", headers={**auth("read"), "If-None-Match": etag})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)

    await write_stats(stored, "blue", {"users": STATS["blue"][0] + 1})
    moved = await client.get(f"/v1/experiments/{stored}/results", headers={**auth("read"), "If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    assert strict_json(moved)["variants"][1]["users"] == STATS["blue"][0] + 1


async def test_the_method_can_be_overridden_per_request_but_not_to_group_sequential(
    client: httpx.AsyncClient, stored: str
) -> None:
    planned = strict_json(await client.get(f"/v1/experiments/{stored}/results", headers=auth("read")))
    bayesian = strict_json(await client.get(f"/v1/experiments/{stored}/results", params={"method": "bayesian"},
                                            headers=auth("read")))
    refused = await client.get(f"/v1/experiments/{stored}/results", params={"method": "group_sequential"},
                               headers=auth("read"))

    assert (planned["method"], bayesian["method"]) == ("frequentist", "bayesian")
    assert all(c["chance_to_win"] is None for m in planned["metrics"] for c in m["comparisons"])
    assert all(0 <= c["chance_to_win"] <= 1 for m in bayesian["metrics"] for c in m["comparisons"])
    assert refused.status_code == 422
    assert [f["field"] for f in refused.json()["error"]["fields"]] == ["query.method"]


async def test_the_list_gives_every_experiment_with_its_users_and_calls(
    client: httpx.AsyncClient, stored: str, create_experiment: CreateExperiment
) -> None:
    await create_experiment("empty", [("control", 1), ("treatment", 1)], [CONVERTED])

    listed = strict_json(await client.get("/v1/experiments", headers=auth("read")))

    by_key = {summary["experiment"]: summary for summary in listed["experiments"]}
    assert set(by_key) == {stored, "empty"}
    assert by_key[stored]["users"] == {key: users for key, (users, *_) in STATS.items()}
    assert (by_key[stored]["phase"], by_key[stored]["status"], by_key[stored]["method"]) == (1, "running",
                                                                                            "frequentist")
    assert by_key["empty"]["users"] == {"control": 0, "treatment": 0}
    assert by_key["empty"]["srm_status"] == "insufficient_data"
    assert (await client.get("/v1/experiments", headers=auth("ingest"))).status_code == 403
