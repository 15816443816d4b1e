"""Each scenario's intended call: stated as a constant, made by the analyzer's own decision rules at the expected
estimates, and reached with the stated power at the default number of users (computed in ``verdict_odds`` from
the scenario's model and the engine's tests, never stored)."""

from __future__ import annotations

import inspect
from functools import cache

import pytest

from devstack import cli
from devstack.simulate.catalog import SCENARIOS, ScenarioName
from devstack.simulate.scenario import POOLED_ARM, Scenario, VerdictCause
from devstack.simulate.simulation import SimulationPlan
from services.analyzer.stats import (
    Comparison,
    DecisionPolicy,
    EffectKind,
    Method,
    MetricReading,
    SrmResult,
    Status,
    Verdict,
    decide,
    equivalence_test,
)
from splitstream.experiment import HOLDOUT_ARM, ExperimentSpec, MetricRole
from tests.unit.devstack.simulate.verdict_odds import (
    EXPERIMENT_KEY,
    ExpectedReading,
    expected_readings,
    verdict_probability,
)

ALL = pytest.mark.parametrize("name", list(ScenarioName))
DEFAULT_USERS = SimulationPlan().users
ODDS_SEED = 2024
"""Seed of the population the expected moments are simulated from: any seed gives nearly the same moments."""
HOLDOUT_WIN_POWER = 0.95
"""The campaign must beat its held-out users on the goal at least this surely."""


@cache
def _readings(name: ScenarioName, users: int = DEFAULT_USERS) -> dict[tuple[str, str, str], ExpectedReading]:
    return expected_readings(SCENARIOS[name], users, ODDS_SEED)


def _spec(scenario: Scenario) -> ExperimentSpec:
    return ExperimentSpec.model_validate(scenario.definition(EXPERIMENT_KEY))


def test_the_default_users_are_the_clis() -> None:
    assert inspect.signature(cli.simulate).parameters["users"].default == DEFAULT_USERS


@ALL
def test_each_treatment_has_one_intended_call_on_a_fitting_metric(name: ScenarioName) -> None:
    scenario = SCENARIOS[name]
    spec = _spec(scenario)
    assert [intended.variant for intended in scenario.expected_verdicts] == [v.key for v in spec.variants[1:]]
    roles = {metric.key: metric.role for metric in spec.metrics}
    for intended in scenario.expected_verdicts:
        assert Verdict(intended.verdict)  # a name the analyzer uses
        assert 0 < intended.power <= 1
        wanted = MetricRole.GUARDRAIL if intended.cause is VerdictCause.GUARDRAIL_HARMED else MetricRole.GOAL
        assert roles[intended.metric] is wanted, intended


def test_the_three_scenarios_intend_three_different_verdicts() -> None:
    verdicts = {name: {intended.verdict for intended in SCENARIOS[name].expected_verdicts} for name in ScenarioName}
    assert verdicts == {ScenarioName.CONTENT: {"ship"}, ScenarioName.PRICING: {"roll_back"},
                        ScenarioName.CAMPAIGN: {"proved_neutral"}}
    causes = {intended.cause for intended in SCENARIOS[ScenarioName.PRICING].expected_verdicts}
    assert VerdictCause.GUARDRAIL_HARMED in causes  # the roll back is a trade-off blocked by a guardrail


def _comparison(reading: ExpectedReading, alpha: float) -> Comparison:
    """The comparison the analyzer would report if the estimate landed on the true lift."""
    half_width = reading.quantile(1 - alpha / 2) * reading.std_error
    return Comparison(EffectKind.RELATIVE, Method.WELCH_T, Status.OK, None, effect=reading.lift,
                      ci_lower=reading.lift - half_width, ci_upper=reading.lift + half_width,
                      std_error=reading.std_error, dof=reading.dof)


@ALL
def test_at_the_true_lifts_the_analyzers_decision_is_the_intended_one_for_the_stated_reason(
    name: ScenarioName,
) -> None:
    scenario = SCENARIOS[name]
    spec = _spec(scenario)
    plan, goal = spec.analysis, spec.goal
    assert goal is not None
    readings = _readings(name)
    for intended in scenario.expected_verdicts:
        goal_reading = readings[(goal.key, intended.variant, "control")]
        equivalent = None if plan.equivalence_margin is None else equivalence_test(
            goal_reading.lift, goal_reading.std_error, plan.equivalence_margin, plan.alpha, goal_reading.dof,
        ).equivalent
        guardrails = [MetricReading(metric.key, _comparison(readings[(metric.key, intended.variant, "control")],
                                                            plan.alpha), metric.higher_is_better, metric.margin)
                      for metric in spec.metrics if metric.role is MetricRole.GUARDRAIL]
        users = round(DEFAULT_USERS * (1 - (scenario.holdout_share or 0)) / len(spec.variants))
        goal_call = MetricReading(goal.key, _comparison(goal_reading, plan.alpha), goal.higher_is_better,
                                  equivalent=equivalent)
        decision = decide(
            goal_call, guardrails, SrmResult(Status.OK, None), users_per_variant=[users, users], days_running=0.0,
            policy=DecisionPolicy(plan.min_users_per_variant, plan.min_days),
        )
        assert decision.verdict.value == intended.verdict, (intended, decision)
        named = [reason for reason in decision.reasons if intended.metric in reason]
        assert named, (intended, decision)
        if intended.cause is VerdictCause.GUARDRAIL_HARMED:
            assert all(reason.startswith("guardrail") for reason in decision.reasons)
            assert goal_reading.lift - goal_reading.quantile(1 - plan.alpha / 2) * goal_reading.std_error > 0, \
                "a trade-off: the goal itself is significantly better"


@ALL
def test_each_intended_call_has_its_stated_power_at_the_default_users(name: ScenarioName) -> None:
    scenario = SCENARIOS[name]
    readings = _readings(name)
    chances = [verdict_probability(scenario, intended, readings, DEFAULT_USERS)
               for intended in scenario.expected_verdicts]
    for intended, chance in zip(scenario.expected_verdicts, chances, strict=True):
        assert chance >= intended.power, (intended, chance)
    # All of a scenario's calls at once (Bonferroni): the run shows its verdict at least as surely as stated.
    assert 1 - sum(1 - chance for chance in chances) >= min(intended.power for intended in scenario.expected_verdicts)


def test_the_brief_powers_content_ships_at_099_and_the_campaign_is_neutral_at_095() -> None:
    assert [intended.power for intended in SCENARIOS[ScenarioName.CONTENT].expected_verdicts] == [0.99]
    assert all(intended.power >= 0.95 for intended in SCENARIOS[ScenarioName.CAMPAIGN].expected_verdicts)


def test_the_power_falls_with_fewer_users_so_the_check_can_fail() -> None:
    scenario = SCENARIOS[ScenarioName.CONTENT]
    [intended] = scenario.expected_verdicts
    few = 2000
    chance = verdict_probability(scenario, intended, _readings(ScenarioName.CONTENT, few), few)
    assert chance < intended.power


def test_the_campaign_clearly_beats_its_held_out_users_on_the_goal() -> None:
    scenario = SCENARIOS[ScenarioName.CAMPAIGN]
    spec = _spec(scenario)
    assert spec.goal is not None
    pooled = _readings(ScenarioName.CAMPAIGN)[(spec.goal.key, POOLED_ARM, HOLDOUT_ARM)]
    assert pooled.lift > 0
    assert pooled.significant(spec.analysis.alpha, better=True) >= HOLDOUT_WIN_POWER


def test_reading_probabilities_follow_the_tests_definitions() -> None:
    """At a true lift of 0 a two-sided test at α is significant either way with probability α/2, and a TOST with
    a margin far beyond the noise proves neutrality whenever the test is not significant: 1 − α."""
    metric = _spec(SCENARIOS[ScenarioName.CAMPAIGN]).metrics[0]
    null = ExpectedReading(metric, 0.0, 0.01, None)
    assert null.significant(0.05, better=True) == pytest.approx(0.025)
    assert null.significant(0.05, better=False) == pytest.approx(0.025)
    assert null.proved_neutral(0.05, margin=1.0) == pytest.approx(0.95)
    assert null.proved_neutral(0.05, margin=0.01) == 0.0  # the 90% interval alone is wider than ±1%
    harmful = ExpectedReading(metric.model_copy(update={"higher_is_better": False, "margin": 0.05}), 0.05, 0.01, None)
    # Harm needs the estimate past the margin (5%) and the interval above 0: about half the time at a lift of 5%.
    assert harmful.harmed(0.05) == pytest.approx(0.5)
