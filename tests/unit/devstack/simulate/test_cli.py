"""`splitstream simulate` and `demo` (`make demo`): what they run and how they end, with the stack and the
simulation replaced by stand-ins."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from typer.testing import CliRunner

from devstack import cli as devstack_cli
from devstack.config import StackConfig
from devstack.simulate.catalog import SCENARIOS, ScenarioName
from devstack.simulate.scenario import Scenario
from devstack.simulate.simulation import SimulationOutcome, SimulationPlan
from devstack.simulate.traffic import Endpoints, Expected, SimulationError
from devstack.stack import StackInfo

KEYS = {"SPLITSTREAM_ADMIN_KEY": "a", "SPLITSTREAM_INGEST_KEY": "i", "SPLITSTREAM_READ_KEY": "r"}


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Scenario, Endpoints, SimulationPlan]]:
    calls: list[tuple[Scenario, Endpoints, SimulationPlan]] = []

    def fake_up(config: StackConfig) -> StackInfo:
        return StackInfo(redis_url="redis://stand-in", keys=KEYS, timings={"kafka": 0.0})

    def fake_run(scenario: Scenario, endpoints: Endpoints, plan: SimulationPlan, console: Any) -> SimulationOutcome:
        calls.append((scenario, endpoints, plan))
        key = f"{scenario.name}-20260302-090000"
        return SimulationOutcome(key=key, report_url=endpoints.report_url(key),
                                 expected=Expected(scenario.tally_metric), reasons=Counter(), results={}, readings=[])

    monkeypatch.setattr(devstack_cli, "_up", fake_up)
    monkeypatch.setattr(devstack_cli, "run_simulation", fake_run)
    return calls


def _last_line(output: str) -> str:
    return [line for line in output.splitlines() if line.strip()][-1]


def test_simulate_runs_the_named_scenario_with_the_plan_and_ends_with_the_report(
    runs: list[tuple[Scenario, Endpoints, SimulationPlan]],
) -> None:
    result = CliRunner().invoke(devstack_cli.app, ["simulate", "--scenario", "pricing", "--users", "3000",
                                                   "--seed", "9", "--waves", "3"])
    assert result.exit_code == 0, result.output
    [(scenario, endpoints, plan)] = runs
    assert scenario is SCENARIOS[ScenarioName.PRICING]
    assert (plan.users, plan.seed, plan.waves) == (3000, 9, 3)
    assert (endpoints.admin_key, endpoints.ingest_key, endpoints.read_key) == ("a", "i", "r")
    assert _last_line(result.output).startswith(f"Report: {endpoints.analyzer}/experiments/pricing-20260302-090000")


def test_demo_is_the_content_scenario_and_ends_with_the_report(
    runs: list[tuple[Scenario, Endpoints, SimulationPlan]],
) -> None:
    result = CliRunner().invoke(devstack_cli.app, ["demo", "--users", "1000"])
    assert result.exit_code == 0, result.output
    [(scenario, endpoints, plan)] = runs
    assert scenario is SCENARIOS[ScenarioName.CONTENT] and plan.users == 1000
    assert _last_line(result.output).startswith(f"Report: {endpoints.analyzer}/experiments/content-")


def test_an_unknown_scenario_is_refused() -> None:
    result = CliRunner().invoke(devstack_cli.app, ["simulate", "--scenario", "checkout"])
    assert result.exit_code == 2


def test_a_failed_simulation_exits_1_saying_why(monkeypatch: pytest.MonkeyPatch,
                                                 runs: list[tuple[Scenario, Endpoints, SimulationPlan]]) -> None:
    def failing(*args: Any) -> SimulationOutcome:
        raise SimulationError("the analyzer did not catch up within 180s")

    monkeypatch.setattr(devstack_cli, "run_simulation", failing)
    result = CliRunner().invoke(devstack_cli.app, ["simulate", "--scenario", "content"])
    assert result.exit_code == 1
    assert "the simulation failed: the analyzer did not catch up" in result.output
