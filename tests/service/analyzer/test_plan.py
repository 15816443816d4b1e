"""The analysis plan in the results: the method the experiment is read by, the p-value correction, the call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.analyzer.stats import adjust_p_values
from services.analyzer.stats.multiple import Correction
from splitstream.experiment import AnalysisMethod, AnalysisPlan, Metric, MetricRole, MetricType, PValueCorrection
from tests.conftest import auth
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

GOAL = Metric(key="converted", type=MetricType.BINOMIAL, event="purchase", role=MetricRole.GOAL)
GUARDRAIL = Metric(key="refunds", type=MetricType.MEAN, event="refund", role=MetricRole.GUARDRAIL,
                   higher_is_better=False, margin=0.02)
SECONDARY = Metric(key="revenue", type=MetricType.MEAN, event="purchase")
READY = AnalysisPlan(min_users_per_variant=1000, min_days=7)


async def _results(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/experiments/{key}/results", headers=auth("read"))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _write(write_stats: WriteStats, key: str, variant: str, users: int, converted: int,
                 refunds: tuple[float, float], revenue: tuple[float, float]) -> None:
    await write_stats(key, variant, {
        "users": users, "converted:sum": converted, "converted:sumsq": converted,
        "refunds:sum": refunds[0], "refunds:sumsq": refunds[1], "revenue:sum": revenue[0], "revenue:sumsq": revenue[1],
    })


@pytest.mark.parametrize(
    ("treatment_refunds", "days", "verdict"),
    [
        ((2_000.0, 40_000.0), 14, "ship"),  # same refunds per user as control: the clear conversion win ships
        ((6_000.0, 120_000.0), 14, "roll_back"),  # refunds tripled: the guardrail blocks the win
        ((2_000.0, 40_000.0), 2, "keep_running"),  # too early, however clear
    ],
)
async def test_the_call_follows_goal_guardrails_and_runtime(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, unique: str,
    treatment_refunds: tuple[float, float], days: float, verdict: str,
) -> None:
    key = f"plan-{unique}"
    await create_experiment(key, [("control", 1), ("treatment", 1)], [GOAL, GUARDRAIL, SECONDARY], READY, days)
    await _write(write_stats, key, "control", 20_000, 2_000, (2_000.0, 40_000.0), (50_000.0, 2_500_000.0))
    await _write(write_stats, key, "treatment", 20_000, 2_400, treatment_refunds, (51_000.0, 2_600_000.0))

    results = await _results(client, key)

    assert [d["variant"] for d in results["decisions"]] == ["treatment"]
    assert results["decisions"][0]["verdict"] == verdict, results["decisions"][0]["reasons"]
    assert results["decisions"][0]["reasons"]
    assert [m["role"] for m in results["metrics"]] == ["goal", "guardrail", "secondary"]


async def test_without_a_goal_there_is_no_call(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, unique: str
) -> None:
    key = f"nogoal-{unique}"
    await create_experiment(key, [("control", 1), ("treatment", 1)], [SECONDARY])
    await _write(write_stats, key, "control", 5_000, 0, (0, 0), (10_000.0, 500_000.0))
    assert (await _results(client, key))["decisions"] == []


@pytest.mark.parametrize("correction", [PValueCorrection.HOLM, PValueCorrection.BH, PValueCorrection.NONE])
async def test_p_values_are_adjusted_across_metrics_and_treatments(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, unique: str,
    correction: PValueCorrection,
) -> None:
    key = f"family-{unique}"
    await create_experiment(key, [("control", 1), ("b", 1), ("c", 1)], [GOAL, GUARDRAIL, SECONDARY],
                            AnalysisPlan(correction=correction))
    await _write(write_stats, key, "control", 20_000, 2_000, (2_000.0, 40_000.0), (50_000.0, 2_500_000.0))
    await _write(write_stats, key, "b", 20_100, 2_150, (2_100.0, 42_000.0), (50_500.0, 2_520_000.0))
    await _write(write_stats, key, "c", 19_900, 2_040, (1_950.0, 39_000.0), (52_000.0, 2_700_000.0))

    comparisons = [c for m in (await _results(client, key))["metrics"] for c in m["comparisons"]]
    raw = [c["p_value"] for c in comparisons]
    adjusted = [c["adjusted_p_value"] for c in comparisons]
    if correction is PValueCorrection.NONE:
        assert adjusted == raw
    else:
        engine = Correction.HOLM if correction is PValueCorrection.HOLM else Correction.BENJAMINI_HOCHBERG
        assert adjusted == pytest.approx(list(adjust_p_values(raw, engine).adjusted), rel=1e-12)
        assert all(a >= p for a, p in zip(adjusted, raw, strict=True))


async def test_bayesian_and_sequential_methods_change_how_the_same_data_read(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, unique: str
) -> None:
    readings = {}
    for method in AnalysisMethod:
        key = f"{method.value}-{unique}"
        plan = AnalysisPlan(method=method, planned_users_per_variant=40_000)
        await create_experiment(key, [("control", 1), ("treatment", 1)], [GOAL], plan)
        await _write(write_stats, key, "control", 20_000, 2_000, (0, 0), (0, 0))
        await _write(write_stats, key, "treatment", 20_000, 2_150, (0, 0), (0, 0))
        results = await _results(client, key)
        assert results["method"] == method.value
        readings[method] = results["metrics"][0]["comparisons"][0]

    fixed, bayes, sequential, group = (readings[m] for m in AnalysisMethod)
    assert fixed["method"] == "welch_t" and fixed["chance_to_win"] is None
    assert bayes["method"] == "gaussian_posterior" and bayes["p_value"] is None
    assert 0.9 < bayes["chance_to_win"] < 1 and bayes["risk_control"] > bayes["risk_treatment"] > 0
    assert sequential["method"] == "confidence_sequence"
    # Valid under continuous peeking costs width: the sequence is wider than the fixed-horizon interval.
    assert sequential["ci_upper"] - sequential["ci_lower"] > fixed["ci_upper"] - fixed["ci_lower"]
    assert sequential["effect"] == pytest.approx(fixed["effect"])
    # 20,000 of 40,000 planned: one look at t = 0.5, whose O'Brien–Fleming boundary is far above 1.96.
    assert group["method"] == "group_sequential" and group["p_value"] is None
    assert (group["look"], group["information_fraction"]) == (1, 0.5) and group["boundary"] > 2.5
    assert group["ci_upper"] - group["ci_lower"] > fixed["ci_upper"] - fixed["ci_lower"]
    assert group["effect"] == pytest.approx(fixed["effect"])
