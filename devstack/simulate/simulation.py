"""One simulated experiment from creation to readout.

Users arrive in waves. For each wave: the users' pre-period history is sent (after the experiment exists, which
makes the collector keep those events' daily totals, and before the users are assigned: a user's events and
exposure share a Kafka partition, keyed by user id, so the history is folded before the exposure freezes the CUPED
covariate), the users are assigned through ``POST /v1/assign`` (exposures logged), their events are sent, and
once the analyzer counts every user in the variants and the holdout arm, and every converted user of the
scenario's tally metric in each, an analyzer snapshot is taken: the points of the report's charts over time.
Then the segment tables are read and the readout printed. The simulator only sends traffic; every figure of the
readout but the simulated truth comes from the analyzer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from devstack.simulate.readout import TruthReading, print_readout
from devstack.simulate.scenario import (
    DEFAULT_USERS,
    Scenario,
    SimulatedUser,
    holdout_key,
    response,
    simulated_user,
)
from devstack.simulate.traffic import Assignment, Endpoints, Expected, Traffic, event_records
from splitstream.experiment import HOLDOUT_ARM


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    users: int = DEFAULT_USERS
    seed: int = 7
    waves: int = 5
    # httpx's connection pool slows down past ~16 concurrent requests (measured for the first demo: 48 gave
    # 250 req/s, 16 gave 680).
    concurrency: int = 16
    batch_size: int = 500
    catch_up_seconds: float = 180.0
    """How long the analyzer may take to count a wave before the run fails."""


@dataclass(frozen=True, slots=True)
class SimulationOutcome:
    key: str
    report_url: str
    expected: Expected
    """What the analyzer counted in the end (the run waits until it does)."""
    reasons: Counter[str]
    results: dict[str, Any]
    readings: list[TruthReading]


def experiment_key(scenario: Scenario, now: datetime) -> str:
    return f"{scenario.name}-{now:%Y%m%d-%H%M%S}"


def salts(scenario: Scenario, seed: int) -> tuple[str, str]:
    """The experiment's and the holdout's hashing salts: fixed per scenario and seed, not per run."""
    return f"{scenario.name}-simulation-{seed}", f"{scenario.name}-holdout-{seed}"


def tally_event(scenario: Scenario, definition: dict[str, Any]) -> str:
    [metric] = [m for m in definition["metrics"] if m["key"] == scenario.tally_metric]
    if metric["type"] != "binomial":
        raise ValueError(f"{scenario.name}: the tally metric {scenario.tally_metric} must be binomial")
    return str(metric["event"])


class _Bars:
    """The progress bar's three lines: users assigned, events sent, users the analyzer counts."""

    def __init__(self, progress: Progress, users: int) -> None:
        self.progress = progress
        self.assigned = progress.add_task("users assigned", total=users)
        self.sent = progress.add_task("events sent", total=0)
        self.counted = progress.add_task("analyzer caught up (exposed users)", total=0)

    def expect(self, task: TaskID, more: int) -> None:
        self.progress.update(task, total=(self.progress.tasks[task].total or 0) + more)

    def advance(self, task: TaskID, amount: int) -> None:
        self.progress.advance(task, amount)

    def counted_so_far(self, users: int) -> None:
        self.progress.update(self.counted, completed=users)


def run(scenario: Scenario, endpoints: Endpoints, plan: SimulationPlan, console: Console) -> SimulationOutcome:
    return asyncio.run(simulate(scenario, endpoints, plan, console))


async def simulate(
    scenario: Scenario, endpoints: Endpoints, plan: SimulationPlan, console: Console, key: str | None = None
) -> SimulationOutcome:
    key = key or experiment_key(scenario, datetime.now(UTC))
    definition = scenario.definition(key)
    event = tally_event(scenario, definition)
    experiment_salt, holdout_salt = salts(scenario, plan.seed)
    holdout = None if scenario.holdout_share is None else {
        "key": holdout_key(key), "share": scenario.holdout_share, "salt": holdout_salt,
        "description": f"held out of the {scenario.name} simulation {key}",
    }
    limits = httpx.Limits(max_connections=plan.concurrency)
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        traffic = Traffic(client, endpoints, concurrency=plan.concurrency, batch_size=plan.batch_size)
        await traffic.create(definition, experiment_salt, holdout)
        console.print(f"experiment {key} created and started ({scenario.name}: {scenario.summary})", highlight=False)
        reasons: Counter[str] = Counter()
        expected = Expected(scenario.tally_metric)
        results: dict[str, Any] = {}
        wave_size = -(-plan.users // plan.waves)
        with Progress(*columns, console=console) as progress:
            bars = _Bars(progress, plan.users)
            for wave, first in enumerate(range(0, plan.users, wave_size), start=1):
                began = time.monotonic()
                users = [simulated_user(scenario, plan.seed, key, index)
                         for index in range(first, min(first + wave_size, plan.users))]
                history = [record for user in users for record in
                           event_records(user.user_id, user.pre_period, datetime.now(UTC), f"{user.user_id}.pre")]
                bars.expect(bars.sent, len(history))
                await traffic.send(history, lambda n: bars.advance(bars.sent, n))
                assignments = await traffic.assign(key, users, lambda n: bars.advance(bars.assigned, n))
                reasons.update(assignment.reason for assignment in assignments.values())
                events, arrived = wave_events(scenario, plan.seed, users, assignments, event)
                bars.expect(bars.sent, len(events))
                bars.expect(bars.counted, arrived.arms_users)
                await traffic.send(events, lambda n: bars.advance(bars.sent, n))
                expected += arrived
                sent = time.monotonic()
                results = await traffic.await_results(key, expected, bars.counted_so_far,
                                                      within=plan.catch_up_seconds)
                await traffic.snapshot(key)
                progress.console.print(
                    f"wave {wave}/{plan.waves}: {len(users)} users ({_arms(arrived)}), {len(history)} pre-period "
                    f"and {len(events)} events sent in {sent - began:.1f}s; the analyzer caught up "
                    f"{time.monotonic() - sent:.1f}s after the last one was accepted", highlight=False)
        segmented = [await traffic.results(key, dimension) for dimension in scenario.segments]
    readings = print_readout(console, scenario, definition, results, segmented, reasons)
    return SimulationOutcome(key=key, report_url=endpoints.report_url(key), expected=expected, reasons=reasons,
                             results=results, readings=readings)


def _arms(counts: Expected) -> str:
    return f"{counts.users} in variants" + (f", {counts.held_out} held out" if counts.held_out else "")


def wave_events(
    scenario: Scenario, seed: int, users: Sequence[SimulatedUser], assignments: dict[str, Assignment], event: str
) -> tuple[list[dict[str, Any]], Expected]:
    """The wave's events (timestamped now, after every exposure of the wave), and what the analyzer must count
    of them: users in the variants and in the holdout arm, and how many of each send ``event`` (the tally
    metric's conversions). Users outside the experiment send their events too, uncounted."""
    now = datetime.now(UTC)
    records: list[dict[str, Any]] = []
    counts = Expected(scenario.tally_metric)
    for user in users:
        assignment = assignments[user.user_id]
        actions = response(scenario, seed, user, assignment.treatment)
        records += event_records(user.user_id, actions, now, f"{user.user_id}.ev")
        converted = int(any(action.name == event for action in actions))
        if assignment.arm == HOLDOUT_ARM:
            counts += Expected(scenario.tally_metric, held_out=1, held_out_tally=converted)
        elif assignment.arm is not None:
            counts += Expected(scenario.tally_metric, users=1, tally=converted)
    return records, counts
