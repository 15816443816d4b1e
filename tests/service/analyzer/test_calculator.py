"""/v1/stats/* against the golden cases: the wire layer must carry the engine's numbers through unchanged."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.unit.analyzer.stats.reference import cases_of

READ = auth("read")


def _case(case_id: str) -> dict[str, Any]:
    return next(case for case in cases_of("binomial", "mean", "ratio", "cuped", "bayesian", "sequential",
                                            "srm", "multi_arm", "power") if case["id"] == case_id)


def _variant(raw: dict[str, Any]) -> dict[str, Any]:
    renames = {"n_users": "n", "n_conversions": "conversions", "sum_num": "numerator_sum",
               "sum_num_sq": "numerator_sum_squares", "sum_den": "denominator_sum",
               "sum_den_sq": "denominator_sum_squares", "sum_num_den": "numerator_denominator_sum",
               "sum_y": "sum", "sum_y_sq": "sum_squares", "sum_x": "covariate_sum",
               "sum_x_sq": "covariate_sum_squares", "sum_xy": "sum_covariate_product"}
    return {renames.get(key, key): value for key, value in raw.items()}


def _close(actual: float | None, expected: float) -> None:
    assert actual == pytest.approx(expected, rel=1e-6, abs=1e-12)


async def _compare(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post("/v1/stats/compare", json=body, headers=READ)
    assert answer.status_code == 200, answer.text
    results: list[dict[str, Any]] = answer.json()["results"]
    assert len(results) == len(body["variants"]) - 1
    return results[0]


@pytest.mark.parametrize(
    ("case_id", "metric_type", "reference"),
    [
        ("binomial_small_n100", "binomial", "gbstats_frequentist_relative"),
        ("binomial_small_n100", "binomial", "gbstats_frequentist_absolute"),
        ("ratio_small_n200", "ratio", "gbstats_frequentist_relative"),
        ("ratio_small_n200", "ratio", "gbstats_frequentist_absolute"),
    ],
)
async def test_frequentist_compare_matches_gbstats(
    client: httpx.AsyncClient, case_id: str, metric_type: str, reference: str
) -> None:
    case = _case(case_id)
    expected = case["results"][reference]["outputs"]
    body = {"metric_type": metric_type, "difference": case["results"][reference]["settings"]["difference_type"],
            "variants": [_variant(v) for v in case["inputs"]["variants"]]}
    result = await _compare(client, body)
    for ours, theirs in (("effect", "expected"), ("ci_lower", "ci_lower"), ("ci_upper", "ci_upper"),
                         ("p_value", "p_value"), ("control_mean", "control_mean"),
                         ("treatment_mean", "treatment_mean")):
        _close(result[ours], expected[theirs])
    assert result["status"] == "ok" and result["chance_to_win"] is None


async def test_cuped_reports_the_adjusted_effect_and_the_variance_reduction(client: httpx.AsyncClient) -> None:
    case = _case("cuped_small_n200")
    body = {"metric_type": "mean", "cuped": True, "variants": [_variant(v) for v in case["inputs"]["variants"]]}
    result = await _compare(client, body)
    adjusted = case["results"]["gbstats_regression_adjusted_relative"]["outputs"]
    _close(result["effect"], adjusted["expected"])
    _close(result["p_value"], adjusted["p_value"])
    reduction = case["results"]["variance_reduction"]["outputs"]["variance_reduction_relative"]
    _close(result["variance_reduction"], reduction)


async def test_bayesian_with_a_proper_prior_matches_gbstats(client: httpx.AsyncClient) -> None:
    case = _case("bayes_binomial_proper_prior")
    settings = case["results"]["gbstats_bayesian"]["settings"]["prior_effect"]
    body = {"metric_type": "binomial", "method": "bayesian",
            "prior": {"mean": settings["mean"], "sd": settings["variance"] ** 0.5},
            "variants": [_variant(v) for v in case["inputs"]["variants"]]}
    result = await _compare(client, body)
    expected = case["results"]["gbstats_bayesian"]["outputs"]
    for ours, theirs in (("effect", "expected"), ("ci_lower", "ci_lower"), ("ci_upper", "ci_upper"),
                         ("chance_to_win", "chance_to_win"), ("risk_control", "risk_control"),
                         ("risk_treatment", "risk_treatment")):
        _close(result[ours], expected[theirs])
    assert result["p_value"] is None


async def test_sequential_uses_the_tuning_parameter_given(client: httpx.AsyncClient) -> None:
    case = _case("seq_binomial_medium")
    reference = case["results"]["gbstats_sequential_relative"]
    body = {"metric_type": "binomial", "method": "sequential",
            "sequential_tuning": reference["settings"]["sequential_tuning_parameter"],
            "variants": [_variant(v) for v in case["inputs"]["variants"]]}
    result = await _compare(client, body)
    _close(result["ci_lower"], reference["outputs"]["ci_lower"])
    _close(result["ci_upper"], reference["outputs"]["ci_upper"])
    # The always-valid p-value agrees with the sequence: above alpha exactly when the sequence covers 0.
    assert (result["p_value"] > 0.05) == (result["ci_lower"] < 0 < result["ci_upper"])


async def test_srm_adjust_and_power_match_their_references(client: httpx.AsyncClient) -> None:
    srm = _case("srm_10_90_mismatch")
    answer = await client.post("/v1/stats/srm", headers=READ, json={
        "counts": srm["inputs"]["observed_users"], "weights": srm["inputs"]["expected_weights"]})
    assert answer.status_code == 200, answer.text
    _close(answer.json()["chi_square"], srm["results"]["scipy_chisquare"]["outputs"]["chi2_statistic"])
    assert answer.json()["mismatch"] is True and answer.json()["threshold"] == 0.001

    family = _case("multitest_fixed_pvalues")
    for method, reference in (("holm", "statsmodels_holm"), ("bh", "statsmodels_fdr_bh")):
        answer = await client.post("/v1/stats/adjust", headers=READ,
                                   json={"p_values": family["inputs"]["p_values"], "method": method})
        assert answer.status_code == 200, answer.text
        for ours, theirs in zip(answer.json()["adjusted"], family["results"][reference]["outputs"]["p_values_adjusted"],
                                strict=True):
            _close(ours, theirs)

    plan = _case("power_p10_rel5")
    answer = await client.post("/v1/stats/power", headers=READ, json={
        key: plan["inputs"][key] for key in ("baseline_rate", "relative_mde", "alpha", "power")} | {
        "variants": 2, "daily_users": 10_000})
    assert answer.status_code == 200, answer.text
    users = plan["results"]["normal_approx_formula"]["outputs"]["n_per_arm_ceil"]
    assert answer.json() == {"users_per_variant": users, "days": -(-users * 2 // 10_000)}
    without_traffic = {key: plan["inputs"][key] for key in ("baseline_rate", "relative_mde", "alpha", "power")}
    answer = await client.post("/v1/stats/power", headers=READ, json=without_traffic)
    assert answer.json() == {"users_per_variant": users}


async def test_srm_answers_exactly_the_published_shape(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/stats/srm", headers=READ, json={"counts": [10_000, 10_100], "weights": [1, 1]})
    assert set(answer.json()) == {"chi_square", "p_value", "mismatch", "threshold"}
    few = await client.post("/v1/stats/srm", headers=READ, json={"counts": [3, 9], "weights": [1, 1]})
    assert few.json() == {"chi_square": None, "p_value": None, "mismatch": False, "threshold": 0.001}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("compare", {"metric_type": "binomial", "variants": [{"name": "a", "n": 10, "conversions": 11},
                                                              {"name": "b", "n": 10, "conversions": 1}]},
         "body.variants.0.conversions"),
        ("compare", {"metric_type": "mean", "variants": [{"name": "a", "n": -1, "sum": 1, "sum_squares": 1},
                                                          {"name": "b", "n": 10, "sum": 1, "sum_squares": 1}]},
         "body.variants.0.n"),
        ("compare", {"metric_type": "mean", "cuped": True,
                     "variants": [{"name": "a", "n": 5, "sum": 1, "sum_squares": 1},
                                  {"name": "b", "n": 10, "sum": 1, "sum_squares": 1}]}, "body.variants.0"),
        ("compare", {"metric_type": "median", "variants": []}, "body.metric_type"),
        ("srm", {"counts": [10, 20, 30], "weights": [1, 1]}, "body.weights"),
        ("srm", {"counts": [10, -20], "weights": [1, 1]}, "body.counts.1"),
        ("adjust", {"p_values": [0.1, 1.5], "method": "holm"}, "body.p_values.1"),
        ("power", {"baseline_rate": 0.9, "relative_mde": 0.2}, "body.relative_mde"),
    ],
)
async def test_bad_arguments_are_422_naming_the_field(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    answer = await client.post(f"/v1/stats/{path}", json=body, headers=READ)
    assert answer.status_code == 422, answer.text
    assert field in [f["field"] for f in answer.json()["error"]["fields"]]


async def test_the_calculator_needs_the_read_scope(client: httpx.AsyncClient) -> None:
    body = {"p_values": [0.1], "method": "bh"}
    assert (await client.post("/v1/stats/adjust", json=body)).status_code == 401
    assert (await client.post("/v1/stats/adjust", json=body, headers=auth("ingest"))).status_code == 403
