"""The scenarios' pure parts: valid definitions, deterministic users, and true effects that the generated
behaviour actually has."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from devstack.simulate.catalog import SCENARIOS, ScenarioName
from devstack.simulate.scenario import POOLED_ARM, Action, Scenario, holdout_key, response, simulated_user
from devstack.simulate.traffic import event_records
from splitstream.events import TrackEvent, event_adapter
from splitstream.experiment import HOLDOUT_ARM, ExperimentSpec, MetricType
from splitstream.layers import Holdout

KEY = "scenario-20260302-101500"
ALL = pytest.mark.parametrize("name", list(ScenarioName))
EFFECT_USERS = 40_000
"""Users per scenario in the effect test; each is simulated under every variant (common random numbers)."""
TOLERANCE_SE = 4.0
LARGEST_MISSED_ERROR = 0.1


def _spec(scenario: Scenario) -> ExperimentSpec:
    return ExperimentSpec.model_validate(scenario.definition(KEY))


@ALL
def test_definition_is_a_valid_experiment_spec(name: ScenarioName) -> None:
    scenario = SCENARIOS[name]
    spec = _spec(scenario)
    assert spec.key == KEY
    assert spec.kind.value == scenario.name == name.value
    assert spec.variants[0].key == scenario.control
    assert spec.segments == list(scenario.segments)
    assert spec.goal is not None
    tally = next(metric for metric in spec.metrics if metric.key == scenario.tally_metric)
    assert tally.type is MetricType.BINOMIAL


@ALL
def test_true_effects_cover_every_metric_and_comparison_the_analyzer_reads(name: ScenarioName) -> None:
    """Each treatment against the control; with a holdout, also each variant and their pool against it."""
    scenario = SCENARIOS[name]
    spec = _spec(scenario)
    variants = [variant.key for variant in spec.variants]
    metrics = {metric.key for metric in spec.metrics}
    stated = [(effect.metric, effect.variant, effect.baseline) for effect in scenario.true_effects]
    assert len(stated) == len(set(stated))
    expected = {(metric, variant, "control") for metric in metrics for variant in variants[1:]}
    if scenario.holdout_share is not None:
        expected |= {(metric, arm, HOLDOUT_ARM) for metric in metrics for arm in (*variants, POOLED_ARM)}
    assert set(stated) == expected


def test_pricing_reads_ratio_cuped_and_a_refund_guardrail() -> None:
    metrics = {metric.key: metric for metric in _spec(SCENARIOS[ScenarioName.PRICING]).metrics}
    order_value = metrics["average_order_value"]
    assert (order_value.type, order_value.event, order_value.denominator_event) == (
        MetricType.RATIO, "purchase", "purchase")
    assert metrics["revenue_per_user"].cuped and metrics["conversion"].cuped
    refunds = metrics["refund_rate"]
    assert (refunds.role.value, refunds.higher_is_better, refunds.margin) == ("guardrail", False, 0.05)


def test_only_the_campaign_is_held_out_and_names_its_holdout() -> None:
    for name, scenario in SCENARIOS.items():
        spec = _spec(scenario)
        if name is ScenarioName.CAMPAIGN:
            assert scenario.holdout_share is not None
            assert spec.holdouts == [holdout_key(KEY)]
            Holdout(key=holdout_key(KEY), share=scenario.holdout_share)  # a share the holdout API accepts
        else:
            assert scenario.holdout_share is None and spec.holdouts == []


@ALL
def test_users_are_deterministic_per_seed_and_person(name: ScenarioName) -> None:
    scenario = SCENARIOS[name]
    variants = [variant.key for variant in _spec(scenario).variants]
    first = [simulated_user(scenario, 7, KEY, index) for index in range(300)]
    again = [simulated_user(scenario, 7, KEY, index) for index in reversed(range(300))][::-1]
    assert first == again
    assert [response(scenario, 7, user, variants[1]) for user in first] == [
        response(scenario, 7, user, variants[1]) for user in again]
    # The run's key changes the ids the APIs see, not who the users are.
    elsewhere = [simulated_user(scenario, 7, "another-run", index) for index in range(300)]
    assert [user.profile for user in elsewhere] == [user.profile for user in first]
    assert not {user.user_id for user in elsewhere} & {user.user_id for user in first}
    other_seed = [simulated_user(scenario, 8, KEY, index) for index in range(300)]
    assert [user.profile for user in other_seed] != [user.profile for user in first]


def _per_user(metric: Any, actions: list[Action]) -> tuple[float, float]:
    """(numerator, denominator) of one user for a metric, read from the metric contract: binomial 1 if the user
    sent the event; mean the total of its values (1 per event without a value); ratio that total over the count
    (or total) of denominator events."""
    def total(event: str) -> float:
        return math.fsum(1.0 if a.value is None else a.value for a in actions if a.name == event)

    if metric.type is MetricType.BINOMIAL:
        return float(any(a.name == metric.event for a in actions)), 1.0
    if metric.type is MetricType.MEAN:
        return total(metric.event), 1.0
    if metric.denominator_aggregate.value == "sum":
        return total(metric.event), total(metric.denominator_event)
    return total(metric.event), float(sum(a.name == metric.denominator_event for a in actions))


def _paired_lift(treatment: np.ndarray, control: np.ndarray) -> tuple[float, float]:
    """Lift R_t/R_c − 1 of ratio estimates R = Σm/Σd over the same users, and its delta-method standard error
    (the influence of user i: (m_ti − R_t d_ti)/(D̄_t R_c) − R_t (m_ci − R_c d_ci)/(D̄_c R_c²), so the pairing's
    covariance is accounted for)."""
    (m_t, d_t), (m_c, d_c) = treatment, control
    r_t, r_c = m_t.sum() / d_t.sum(), m_c.sum() / d_c.sum()
    influence = (m_t - r_t * d_t) / (d_t.mean() * r_c) - r_t * (m_c - r_c * d_c) / (d_c.mean() * r_c**2)
    return r_t / r_c - 1, float(influence.std(ddof=1) / math.sqrt(len(m_t)))


@ALL
def test_the_simulated_true_effects_show_in_a_large_sample(name: ScenarioName) -> None:
    scenario = SCENARIOS[name]
    spec = _spec(scenario)
    users = [simulated_user(scenario, 11, KEY, index) for index in range(EFFECT_USERS)]
    variants = [variant.key for variant in spec.variants]
    # Held-out users are shown nothing: the model's response to no variant.
    by_arm = {arm: [response(scenario, 11, user, None if arm == HOLDOUT_ARM else arm) for user in users]
              for arm in (*variants, HOLDOUT_ARM)}
    metrics = {metric.key: metric for metric in spec.metrics}

    def sample(metric: str, arm: str) -> np.ndarray:
        if arm == POOLED_ARM:
            # The pool of equally weighted variants: each user's mean over them (every user is in every arm).
            return np.mean([sample(metric, variant) for variant in variants], axis=0)
        return np.array([_per_user(metrics[metric], actions) for actions in by_arm[arm]]).T

    for effect in scenario.true_effects:
        baseline = scenario.control if effect.baseline == "control" else effect.baseline
        lift, std_error = _paired_lift(sample(effect.metric, effect.variant), sample(effect.metric, baseline))
        assert abs(lift - effect.lift) <= TOLERANCE_SE * std_error, (effect, lift, std_error)
        # Small enough to fail a model whose lift is off by a tenth (rare refunds make the widest interval).
        assert TOLERANCE_SE * std_error < LARGEST_MISSED_ERROR, (effect, std_error)


def test_pre_period_spend_predicts_spend_in_the_test() -> None:
    scenario = SCENARIOS[ScenarioName.PRICING]
    users = [simulated_user(scenario, 3, KEY, index) for index in range(20_000)]
    before = np.array([sum(a.value or 0 for a in user.pre_period) for user in users])
    during = np.array([sum(a.value or 0 for a in response(scenario, 3, user, scenario.control) if a.name == "purchase")
                       for user in users])
    assert before.sum() > 0
    # With 20,000 users a correlation above 0.05 is far outside chance (its SE is about 0.007).
    assert np.corrcoef(before, during)[0, 1] > 0.05


@pytest.mark.parametrize("now", [
    datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC), datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
    datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC),
])
def test_pre_period_events_fall_on_earlier_days_within_the_collectors_reach(now: datetime) -> None:
    scenario = SCENARIOS[ScenarioName.PRICING]
    users = [simulated_user(scenario, 5, KEY, index) for index in range(2000)]
    records = [record for user in users for record in event_records(user.user_id, user.pre_period, now, user.user_id)]
    assert len(records) > 100
    days = set()
    for record in records:
        event = event_adapter.validate_python(record)
        assert isinstance(event, TrackEvent) and event.name == "purchase" and event.value
        # The user is exposed after ``now``, so the exposure's UTC day is ``now``'s or later.
        assert event.timestamp.date() < now.date()
        assert now - event.timestamp < timedelta(days=3)  # the collector's max_past_skew
        days.add((now.date() - event.timestamp.date()).days)
    assert days <= {1, 2, 3} and len(days) >= 2


@ALL
def test_events_after_assignment_are_valid_and_not_in_the_past(name: ScenarioName) -> None:
    scenario = SCENARIOS[name]
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    records = []
    for index in range(500):
        user = simulated_user(scenario, 1, KEY, index)
        records += event_records(user.user_id, response(scenario, 1, user, scenario.control), now, f"{user.user_id}.ev")
    assert records
    assert len({record["event_id"] for record in records}) == len(records)
    for record in records:
        event = event_adapter.validate_python(record)
        assert event.timestamp >= now
