"""Each simulation scenario, small, through the running stack's HTTP APIs (what `splitstream simulate` does).

`make test` starts the stack, exports its URLs and sets SPLITSTREAM_*_KEY to the test keys; pointed at another
stack (the dev one), the same variables name its URLs and keys.
"""

from __future__ import annotations

import io
import os

import httpx
import pytest
from rich.console import Console

from devstack.simulate.catalog import SCENARIOS, ScenarioName
from devstack.simulate.simulation import SimulationPlan, simulate
from devstack.simulate.traffic import Endpoints
from tests.conftest import TEST_KEYS

pytestmark = pytest.mark.integration

USERS = 240
WAVES = 2


def _endpoints() -> Endpoints:
    keys = {f"SPLITSTREAM_{scope.upper()}_KEY": os.environ.get(f"SPLITSTREAM_{scope.upper()}_KEY",
                                                               TEST_KEYS[f"{scope}_key"])
            for scope in ("admin", "ingest", "read")}
    return Endpoints.with_keys(
        os.environ.get("SPLITSTREAM_TEST_ASSIGNMENT_URL", "http://127.0.0.1:28001"),
        os.environ.get("SPLITSTREAM_TEST_COLLECTOR_URL", "http://127.0.0.1:28002"),
        os.environ.get("SPLITSTREAM_TEST_ANALYZER_URL", "http://127.0.0.1:28003"),
        keys,
    )


@pytest.mark.parametrize("name", list(ScenarioName))
async def test_a_scenario_runs_end_to_end_and_the_analyzer_counts_what_was_sent(
    name: ScenarioName, unique: str
) -> None:
    scenario = SCENARIOS[name]
    endpoints = _endpoints()
    out = io.StringIO()
    key = f"sim-{name.value}-{unique}"
    outcome = await simulate(scenario, endpoints, SimulationPlan(users=USERS, seed=5, waves=WAVES, concurrency=8,
                                                                 catch_up_seconds=60),
                             Console(file=out, width=200), key=key)

    assert outcome.key == key and outcome.report_url == f"{endpoints.analyzer}/experiments/{key}"
    assert sum(outcome.reasons.values()) == USERS
    held = outcome.reasons.get("holdout", 0)
    counted = outcome.expected
    assert (outcome.reasons["hashed"], held) == (counted.users, counted.held_out) == (USERS - held, held)
    if scenario.holdout_share is not None:
        assert held > 0  # P(no holdout among 240 at 10%) = 0.9^240 ≈ 1e-11
        assert outcome.results["holdout"]["users"] == held
    else:
        assert held == 0
    assert sum(variant["users"] for variant in outcome.results["variants"]) == counted.users
    assert counted.tally > 0
    assert [reading.truth for reading in outcome.readings] == list(scenario.true_effects)
    assert "Simulated truth" in out.getvalue()

    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"{endpoints.analyzer}/v1/experiments/{key}/timeseries",
                                  headers={"Authorization": f"Bearer {endpoints.read_key}"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["points"]) >= WAVES  # one snapshot per wave (the hourly one may add a point)
