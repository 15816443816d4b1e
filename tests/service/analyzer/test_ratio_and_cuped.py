"""Ratio metrics and CUPED in the results API, from the variant hashes the collector folds; ``?difference=`` and
``?cuped=`` overrides. The numbers must be the engine's on the same sufficient statistics."""

from __future__ import annotations

import base64
import random
from typing import Any

import httpx
import orjson
import pytest

from services.analyzer.stats import compare, compare_cuped, compare_ratio
from services.analyzer.stats.bayesian import bayesian_compare_ratio
from splitstream.experiment import AnalysisPlan, Difference, Metric, MetricType
from splitstream.statistics import CovariateMoments, RatioMoments
from tests.conftest import TEST_KEYS
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

READ = {"Authorization": f"Bearer {TEST_KEYS['read_key']}"}
KEY = "pricing-test"
METRICS = [
    Metric(key="order_value", type=MetricType.RATIO, event="purchase", denominator_event="purchase"),
    Metric(key="revenue", type=MetricType.MEAN, event="purchase"),
    Metric(key="unadjusted_revenue", type=MetricType.MEAN, event="purchase", cuped=False),
]


def _users(seed: int, count: int, lift: float) -> tuple[RatioMoments, CovariateMoments]:
    """Per user: orders and spend after exposure (ratio), and spend before it correlated with spend after (CUPED)."""
    rng = random.Random(seed)
    spend, orders, before = [], [], []
    for _ in range(count):
        propensity = rng.expovariate(1.0)
        before.append(round(propensity * 40 + rng.gauss(0, 5), 2))
        orders.append(float(rng.randint(0, 3)))
        spend.append(round(propensity * 45 * (1 + lift) + rng.gauss(0, 5), 2))
    return RatioMoments.of(spend, orders), CovariateMoments.of(spend, before)


def _fields(ratio: RatioMoments, covariate: CovariateMoments) -> dict[str, float | int]:
    return {
        "users": ratio.n,
        "order_value:sum": ratio.numerator_sum, "order_value:sumsq": ratio.numerator_sum_squares,
        "order_value:dsum": ratio.denominator_sum, "order_value:dsumsq": ratio.denominator_sum_squares,
        "order_value:md": ratio.numerator_denominator_sum,
        "revenue:sum": covariate.sum, "revenue:sumsq": covariate.sum_squares,
        "revenue:xsum": covariate.covariate_sum, "revenue:xsumsq": covariate.covariate_sum_squares,
        "revenue:xy": covariate.sum_covariate_product,
        "unadjusted_revenue:sum": covariate.sum, "unadjusted_revenue:sumsq": covariate.sum_squares,
        "unadjusted_revenue:xsum": covariate.covariate_sum,
        "unadjusted_revenue:xsumsq": covariate.covariate_sum_squares,
        "unadjusted_revenue:xy": covariate.sum_covariate_product,
    }


@pytest.fixture
async def arms(create_experiment: CreateExperiment, write_stats: WriteStats) -> dict[str, tuple[Any, Any]]:
    await create_experiment(KEY, [("control", 1), ("higher_price", 1)], METRICS)
    stored = {"control": _users(1, 800, 0.0), "higher_price": _users(2, 800, 0.05)}
    for variant, (ratio, covariate) in stored.items():
        await write_stats(KEY, variant, _fields(ratio, covariate))
    return stored


def _metric(body: dict[str, Any], key: str) -> dict[str, Any]:
    [metric] = [m for m in body["metrics"] if m["key"] == key]
    return metric


def _assert_effect(wire: dict[str, Any], effect: Any) -> None:
    for name in ("effect", "ci_lower", "ci_upper", "p_value"):
        assert wire[name] == pytest.approx(getattr(effect, name), rel=1e-9), name


async def test_a_ratio_metric_is_compared_by_the_delta_method(
    client: httpx.AsyncClient, arms: dict[str, tuple[RatioMoments, CovariateMoments]]
) -> None:
    body = (await client.get(f"/v1/experiments/{KEY}/results", headers=READ)).json()

    metric = _metric(body, "order_value")
    control, treatment = arms["control"][0], arms["higher_price"][0]
    expected = compare_ratio(control, treatment)
    [comparison] = metric["comparisons"]
    _assert_effect(comparison, expected.relative)
    _assert_effect(comparison["absolute"], expected.absolute)
    assert metric["type"] == "ratio" and metric["denominator_event"] == "purchase" and metric["cuped"] is False
    [control_out, _] = metric["variants"]
    assert control_out["mean"] == pytest.approx(control.numerator_sum / control.denominator_sum, rel=1e-12)
    assert control_out["denominator_sum"] == control.denominator_sum


async def test_cuped_adjusts_where_the_metric_asks_and_reports_the_variance_it_removed(
    client: httpx.AsyncClient, arms: dict[str, tuple[RatioMoments, CovariateMoments]]
) -> None:
    body = (await client.get(f"/v1/experiments/{KEY}/results", headers=READ)).json()

    control, treatment = arms["control"][1], arms["higher_price"][1]
    cuped = compare_cuped(control, treatment)
    adjusted = _metric(body, "revenue")
    assert adjusted["cuped"] is True
    [comparison] = adjusted["comparisons"]
    _assert_effect(comparison, cuped.adjusted.relative)
    assert comparison["variance_reduction"] == pytest.approx(cuped.variance_reduction_relative, rel=1e-9)
    assert comparison["variance_reduction"] > 0.5, "spend before predicts spend after in this data"
    assert adjusted["variants"][0]["covariate_mean"] == pytest.approx(control.covariate().mean, rel=1e-12)

    plain = _metric(body, "unadjusted_revenue")
    assert plain["cuped"] is False
    [comparison] = plain["comparisons"]
    _assert_effect(comparison, compare(control.outcome(), treatment.outcome()).relative)
    assert comparison["variance_reduction"] is None


@pytest.mark.parametrize(("flag", "adjusted_metrics"), [("false", set()), ("true", {"revenue", "unadjusted_revenue"})])
async def test_the_cuped_override_turns_it_on_or_off_for_every_metric(
    client: httpx.AsyncClient, arms: dict[str, tuple[RatioMoments, CovariateMoments]], flag: str,
    adjusted_metrics: set[str],
) -> None:
    body = (await client.get(f"/v1/experiments/{KEY}/results", params={"cuped": flag}, headers=READ)).json()

    assert {m["key"] for m in body["metrics"] if m["cuped"]} == adjusted_metrics
    control, treatment = arms["control"][1], arms["higher_price"][1]
    expected = compare_cuped(control, treatment).adjusted if flag == "true" else compare(
        control.outcome(), treatment.outcome())
    [comparison] = _metric(body, "unadjusted_revenue")["comparisons"]
    _assert_effect(comparison, expected.relative)


async def test_difference_absolute_leads_with_the_absolute_difference_and_keeps_both_scales(
    client: httpx.AsyncClient, arms: dict[str, tuple[RatioMoments, CovariateMoments]]
) -> None:
    body = (await client.get(f"/v1/experiments/{KEY}/results", params={"difference": "absolute"},
                             headers=READ)).json()

    assert body["difference"] == "absolute"
    expected = compare_ratio(arms["control"][0], arms["higher_price"][0])
    [comparison] = _metric(body, "order_value")["comparisons"]
    _assert_effect(comparison, expected.absolute)
    _assert_effect(comparison["relative"], expected.relative)
    _assert_effect(comparison["absolute"], expected.absolute)


async def test_a_ratio_metric_reads_by_the_bayesian_method_too(
    client: httpx.AsyncClient, arms: dict[str, tuple[RatioMoments, CovariateMoments]]
) -> None:
    body = (await client.get(f"/v1/experiments/{KEY}/results", params={"method": "bayesian"}, headers=READ)).json()

    [comparison] = _metric(body, "order_value")["comparisons"]
    expected = bayesian_compare_ratio(arms["control"][0], arms["higher_price"][0])
    assert comparison["chance_to_win"] == pytest.approx(expected.relative.chance_to_win, rel=1e-9)
    assert comparison["effect"] == pytest.approx(expected.relative.posterior_mean, rel=1e-9)


@pytest.mark.usefixtures("arms")
@pytest.mark.parametrize(("query", "field"), [({"difference": "percent"}, "query.difference"),
                                              ({"cuped": "maybe"}, "query.cuped")])
async def test_a_bad_override_is_a_422_naming_it(
    client: httpx.AsyncClient, query: dict[str, str], field: str
) -> None:
    answer = await client.get(f"/v1/experiments/{KEY}/results", params=query, headers=READ)

    assert answer.status_code == 422
    assert field in {error["field"] for error in answer.json()["error"]["fields"]}


@pytest.mark.usefixtures("arms")
@pytest.mark.parametrize(("lang", "note"), [("en", "CUPED: variance −"), ("zh", "CUPED：方差 −")])
async def test_the_report_marks_a_cuped_metric_with_the_variance_it_removed(
    client: httpx.AsyncClient, lang: str, note: str
) -> None:
    basic = "Basic " + base64.b64encode(f"lead:{TEST_KEYS['read_key']}".encode()).decode()
    page = await client.get(f"/experiments/{KEY}", params={"lang": lang}, headers={"Authorization": basic})

    assert page.status_code == 200
    rows = [row for row in page.text.split("<tr>") if note in row]
    assert [row.split("</td>")[0].split(">")[1].split(" ")[0] for row in rows] == ["revenue"]


async def test_the_report_reads_lifts_even_when_the_plan_leads_with_the_absolute_difference(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats
) -> None:
    await create_experiment("absolute-plan", [("control", 1), ("higher_price", 1)], METRICS,
                            analysis=AnalysisPlan(difference=Difference.ABSOLUTE))
    for variant, seed, lift in (("control", 1, 0.0), ("higher_price", 2, 0.05)):
        await write_stats("absolute-plan", variant, _fields(*_users(seed, 800, lift)))
    api = (await client.get("/v1/experiments/absolute-plan/results", headers=READ)).json()
    basic = "Basic " + base64.b64encode(f"lead:{TEST_KEYS['read_key']}".encode()).decode()

    page = await client.get("/experiments/absolute-plan", params={"lang": "en"}, headers={"Authorization": basic})

    drawn = orjson.loads(page.text.split('id="report-data">')[1].split("</script>")[0])
    [comparison] = _metric(api, "order_value")["comparisons"]
    [charted] = next(m for m in drawn["metrics"] if m["key"] == "order_value")["comparisons"]
    assert api["difference"] == "absolute" and comparison["effect"] == comparison["absolute"]["effect"]
    assert charted["effect"] == pytest.approx(comparison["relative"]["effect"], rel=1e-12)
