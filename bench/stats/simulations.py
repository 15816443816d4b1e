"""Large seeded simulations of the statistics engine's error rates and power, with the figures printed:

    .venv/bin/python -m bench.stats.simulations

1. A/A false-positive rate of the fixed-horizon Welch test at α = 0.05 over 10,000 runs (target 0.045–0.055),
   through the engine's own ``compare`` run by run.
2. A/A any-look false-positive rate over 20 equally spaced looks for both sequential modes (target ≤ 0.05), next to
   the rate of naively re-running the fixed test at every look.
3. Power at p = 0.10 vs 0.105 (+5% relative) with 30,000 users per arm: fixed test at the end vs the planned-horizon
   O'Brien–Fleming test over 20 looks (target ≥ 0.9× the fixed power), and the confidence sequence with N* from the
   plan (60,000) vs gbstats' default N* = 5,000.

Sufficient statistics are drawn directly (binomial conversions per arm per look), not raw rows. Sections 2 and 3
compute z for all runs at once with numpy — the engine's absolute-difference z, (p_t − p_c)/√(v_t/n + v_c/n) —
against the engine's own thresholds (``obrien_fleming_boundaries``, ``confidence_sequence_critical_z``); a sample
of runs is re-checked through the engine's public functions. Binomial standard errors of every rate are printed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.analyzer.stats import EffectKind, compare
from services.analyzer.stats.power import achieved_power
from services.analyzer.stats.sequential import (
    confidence_sequence,
    confidence_sequence_critical_z,
    group_sequential_compare,
    obrien_fleming_boundaries,
    tuning_parameter_from_plan,
)
from splitstream.statistics import Proportion

ALPHA = 0.05
SEED = 20240615
AA_RUNS, AA_USERS, AA_RATE = 10_000, 10_000, 0.10
LOOK_RUNS, LOOKS = 50_000, 20
RATE, LIFT, USERS_PER_ARM = 0.10, 0.05, 30_000
DEFAULT_TUNING = 5_000.0
FIXED_CRITICAL_Z = 1.959963984540054


@dataclass(frozen=True)
class LookSchedule:
    """Cumulative users per arm at each look and the engine's thresholds for them."""

    users: NDArray[np.int64]
    planned_boundaries: NDArray[np.float64]
    sequence_critical_planned: NDArray[np.float64]
    sequence_critical_default: NDArray[np.float64]
    planned_tuning: float


def schedule() -> LookSchedule:
    users = (USERS_PER_ARM // LOOKS) * np.arange(1, LOOKS + 1)
    fractions = [look / LOOKS for look in range(1, LOOKS + 1)]
    boundaries = np.array(obrien_fleming_boundaries(fractions, ALPHA), dtype=float)
    tuning = tuning_parameter_from_plan(USERS_PER_ARM, USERS_PER_ARM)

    def critical(tuning_parameter: float) -> NDArray[np.float64]:
        return np.array([confidence_sequence_critical_z(int(2 * n), ALPHA, tuning_parameter) for n in users])

    return LookSchedule(users, boundaries, critical(tuning), critical(DEFAULT_TUNING), tuning)


def binomial_rate_error(rate: float, runs: int) -> float:
    return math.sqrt(rate * (1 - rate) / runs)


def describe(label: str, rate: float, runs: int, note: str, ok: bool | None = None) -> None:
    """One figure with its binomial SE; ``ok`` marks a target met (True), missed (False) or not a target (None)."""
    mark = "    " if ok is None else ("ok  " if ok else "MISS")
    print(f"  [{mark}] {label:<68} {rate:.4f} ± {binomial_rate_error(rate, runs):.4f}   ({note})")


def a_a_fixed(rng: np.random.Generator) -> None:
    print(f"1. A/A fixed-horizon Welch test, {AA_RUNS:,} runs, {AA_USERS:,} users per arm, rate {AA_RATE:.0%}, "
          f"alpha {ALPHA}")
    control, treatment = rng.binomial(AA_USERS, AA_RATE, size=(2, AA_RUNS))
    relative = absolute = 0
    for c, t in zip(control, treatment, strict=True):
        result = compare(Proportion(AA_USERS, int(c)), Proportion(AA_USERS, int(t)), ALPHA)
        relative += result.relative.p_value is not None and result.relative.p_value < ALPHA
        absolute += result.absolute.p_value is not None and result.absolute.p_value < ALPHA
    for label, count in (("relative lift (delta method)", relative), ("absolute difference", absolute)):
        rate = count / AA_RUNS
        describe(f"false-positive rate, {label}", rate, AA_RUNS, "target 0.045-0.055", 0.045 <= rate <= 0.055)


def cumulative_z(rng: np.random.Generator, users: NDArray[np.int64], treatment_rate: float) -> NDArray[np.float64]:
    """z of the absolute difference at every look of every run, shape (LOOK_RUNS, LOOKS)."""
    step = int(users[0])
    control = rng.binomial(step, RATE, size=(LOOK_RUNS, LOOKS)).cumsum(axis=1)
    treatment = rng.binomial(step, treatment_rate, size=(LOOK_RUNS, LOOKS)).cumsum(axis=1)
    p_c, p_t = control / users, treatment / users
    z: NDArray[np.float64] = (p_t - p_c) / np.sqrt((p_c * (1 - p_c) + p_t * (1 - p_t)) / users)
    return z


def check_against_engine(sample: LookSchedule, treatment_rate: float, seed: int) -> None:
    """Re-derive a few runs' decisions through the engine's public API: they must match the vectorised ones."""
    rng = np.random.default_rng(seed)
    step = int(sample.users[0])
    fractions = [look / LOOKS for look in range(1, LOOKS + 1)]
    mismatches = 0
    for _ in range(20):
        control = rng.binomial(step, RATE, size=LOOKS).cumsum()
        treatment = rng.binomial(step, treatment_rate, size=LOOKS).cumsum()
        for look in range(LOOKS):
            n = int(sample.users[look])
            arms = Proportion(n, int(control[look])), Proportion(n, int(treatment[look]))
            planned = group_sequential_compare(*arms, EffectKind.ABSOLUTE, fractions[: look + 1], ALPHA)
            sequence = confidence_sequence(*arms, EffectKind.ABSOLUTE, ALPHA, tuning_parameter=sample.planned_tuning)
            z_look = planned.statistic or 0.0
            mismatches += planned.reject != (abs(z_look) >= sample.planned_boundaries[look])
            mismatches += (sequence.p_value is not None and sequence.p_value <= ALPHA) != (
                abs(z_look) >= sample.sequence_critical_planned[look])
    assert mismatches == 0, f"{mismatches} decisions differ between the engine and the vectorised simulation"


def a_a_looks(rng: np.random.Generator, sample: LookSchedule) -> None:
    print(f"2. A/A with {LOOKS} looks (every {sample.users[0]:,} users per arm, to {sample.users[-1]:,}), "
          f"{LOOK_RUNS:,} runs, any-look false-positive rate")
    z = cumulative_z(rng, sample.users, RATE)
    check_against_engine(sample, RATE, SEED + 2)
    rows = (
        ("planned horizon, O'Brien-Fleming spending", sample.planned_boundaries, True),
        (f"confidence sequence, N* = {sample.planned_tuning:,.0f} (plan)", sample.sequence_critical_planned, True),
        (f"confidence sequence, N* = {DEFAULT_TUNING:,.0f} (gbstats default)", sample.sequence_critical_default, True),
        ("naive: fixed test re-run at every look", np.full(LOOKS, FIXED_CRITICAL_Z), False),
    )
    for label, critical, bounded in rows:
        rate = float(np.mean((np.abs(z) >= critical).any(axis=1)))
        if bounded:
            describe(label, rate, LOOK_RUNS, "target <= 0.05, within 2 SE of simulation error",
                     rate <= ALPHA + 2 * binomial_rate_error(ALPHA, LOOK_RUNS))
        else:
            describe(label, rate, LOOK_RUNS, "what peeking without a correction costs")


def power(rng: np.random.Generator, sample: LookSchedule) -> None:
    treatment_rate = RATE * (1 + LIFT)
    print(f"3. Power, {RATE:.0%} vs {treatment_rate:.1%} (+{LIFT:.0%} relative), {USERS_PER_ARM:,} users per arm, "
          f"{LOOK_RUNS:,} runs")
    z = cumulative_z(rng, sample.users, treatment_rate)
    fixed = float(np.mean(np.abs(z[:, -1]) >= FIXED_CRITICAL_Z))
    formula = achieved_power(RATE, LIFT, USERS_PER_ARM, ALPHA)
    describe("fixed-horizon test at the end", fixed, LOOK_RUNS, f"normal formula {formula:.4f}")
    planned = float(np.mean((np.abs(z) >= sample.planned_boundaries).any(axis=1)))
    describe(f"planned horizon, {LOOKS} looks (ratio to fixed {planned / fixed:.3f})", planned, LOOK_RUNS,
             "target >= 0.9x fixed", planned >= 0.9 * fixed)
    for label, critical in (
        (f"confidence sequence, N* = {sample.planned_tuning:,.0f} (plan)", sample.sequence_critical_planned),
        (f"confidence sequence, N* = {DEFAULT_TUNING:,.0f} (gbstats default)", sample.sequence_critical_default),
    ):
        any_look = float(np.mean((np.abs(z) >= critical).any(axis=1)))
        at_end = float(np.mean(np.abs(z[:, -1]) >= critical[-1]))
        describe(f"{label}, any look", any_look, LOOK_RUNS, f"{any_look / fixed:.3f}x fixed")
        describe(f"{label}, last look only", at_end, LOOK_RUNS, f"{at_end / fixed:.3f}x fixed")


def timed(started: float) -> None:
    print(f"     ({time.perf_counter() - started:.1f} s)")


def main() -> None:
    began = time.perf_counter()
    rng = np.random.default_rng(SEED)
    sample = schedule()
    started = time.perf_counter()
    a_a_fixed(rng)
    timed(started)
    started = time.perf_counter()
    a_a_looks(rng, sample)
    timed(started)
    started = time.perf_counter()
    power(rng, sample)
    timed(started)
    print(f"total {time.perf_counter() - began:.1f} s (including the boundaries of the {LOOKS} looks)")


if __name__ == "__main__":
    main()
