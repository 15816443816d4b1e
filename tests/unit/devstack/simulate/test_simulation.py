"""The pure parts of a simulation run: keys, salts, and what each wave expects the analyzer to count."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from devstack.simulate.catalog import SCENARIOS, ScenarioName
from devstack.simulate.scenario import holdout_key, response, simulated_user
from devstack.simulate.simulation import experiment_key, salts, tally_event, wave_events
from devstack.simulate.traffic import Assignment
from splitstream.experiment import HOLDOUT_ARM, Key


def test_keys_are_valid_experiment_and_holdout_keys() -> None:
    key = experiment_key(SCENARIOS[ScenarioName.CAMPAIGN], datetime(2026, 3, 2, 9, 5, 7, tzinfo=UTC))
    assert key == "campaign-20260302-090507"
    adapter = TypeAdapter(Key)
    assert adapter.validate_python(key) == key
    assert adapter.validate_python(holdout_key(key)) == holdout_key(key)


def test_salts_depend_on_scenario_and_seed_only() -> None:
    content, pricing = SCENARIOS[ScenarioName.CONTENT], SCENARIOS[ScenarioName.PRICING]
    assert salts(content, 7) == salts(content, 7)
    assert len({salts(content, 7), salts(content, 8), salts(pricing, 7)}) == 3
    assert len(set(salts(content, 7))) == 2


def test_tally_events_are_the_binomial_metrics_events() -> None:
    events = {name: tally_event(scenario, scenario.definition("k")) for name, scenario in SCENARIOS.items()}
    assert events == {ScenarioName.CONTENT: "title_click", ScenarioName.PRICING: "purchase",
                      ScenarioName.CAMPAIGN: "order"}


def test_tally_metric_must_be_binomial() -> None:
    scenario = SCENARIOS[ScenarioName.PRICING]
    definition = scenario.definition("k")
    for metric in definition["metrics"]:
        if metric["key"] == scenario.tally_metric:
            metric["type"] = "mean"
    with pytest.raises(ValueError, match="must be binomial"):
        tally_event(scenario, definition)


def test_a_wave_expects_variant_and_holdout_arms_apart_and_sends_everyones_events() -> None:
    scenario = SCENARIOS[ScenarioName.CAMPAIGN]
    users = [simulated_user(scenario, 3, "campaign-1", index) for index in range(3000)]

    def assigned(index: int) -> Assignment:
        if index % 10 == 0:
            return Assignment(HOLDOUT_ARM, "holdout")
        return Assignment(None, "not_targeted") if index % 10 == 1 else Assignment("copy_b", "hashed")

    assignments = {user.user_id: assigned(index) for index, user in enumerate(users)}
    records, expected = wave_events(scenario, 3, users, assignments, "order")
    assert (expected.users, expected.held_out, expected.arms_users) == (2400, 300, 2700)

    def acting(kind: int, event: str | None = None) -> set[str]:
        """Users of ``kind`` (index mod 10) who send anything, or ``event`` when named."""
        return {user.user_id for index, user in enumerate(users) if index % 10 == kind
                and any(event in (None, action.name)
                        for action in response(scenario, 3, user, None if kind in (0, 1) else "copy_b"))}

    treated = set().union(*(acting(kind, "order") for kind in range(2, 10)))
    assert acting(0, "order") and acting(1, "order"), "held-out and untargeted users still shop"
    assert (expected.tally, expected.held_out_tally) == (len(treated), len(acting(0, "order")))
    assert {record["user_id"] for record in records} == set().union(*(acting(kind) for kind in range(10)))
