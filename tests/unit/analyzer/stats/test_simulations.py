"""Small seeded simulations of A/A experiments: the tests keep their false-positive rate.

Sufficient statistics are drawn directly (binomial conversions per arm, per look), never raw rows. With R runs the
simulated rate has binomial standard error SE = √(α(1 − α)/R); every bound below is the nominal α widened by a
stated number of SEs, so a correct method fails it with probability < 0.3% (3 SE, one-sided) — while an
uncorrected "peek at every look" test, checked alongside, lands far outside. The large versions, with printed
figures and power comparisons, are in ``bench/stats/simulations.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from services.analyzer.stats import EffectKind, Status, absolute_difference
from services.analyzer.stats.sequential import (
    confidence_sequence,
    confidence_sequence_critical_z,
    group_sequential_compare,
    obrien_fleming_boundaries,
    tuning_parameter_from_plan,
)
from splitstream.statistics import Proportion

ALPHA = 0.05
RATE = 0.1
LOOKS, USERS_PER_LOOK = 20, 250  # per arm: 5,000 users per arm at the 20th look
SEQUENTIAL_RUNS = 2_000
FIXED_RUNS = 6_000


def standard_error(runs: int) -> float:
    return math.sqrt(ALPHA * (1 - ALPHA) / runs)


def cumulative_conversions(seed: int, runs: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Conversions so far in each arm at each look, shape (runs, LOOKS), under H0 (both arms convert at RATE)."""
    rng = np.random.default_rng(seed)
    control = rng.binomial(USERS_PER_LOOK, RATE, size=(runs, LOOKS)).cumsum(axis=1)
    treatment = rng.binomial(USERS_PER_LOOK, RATE, size=(runs, LOOKS)).cumsum(axis=1)
    return control, treatment


def welch_z(control: NDArray[np.int64], treatment: NDArray[np.int64], users: NDArray[np.int64]) -> NDArray[np.float64]:
    """The engine's absolute-difference z, (p_t − p_c)/√(p_t(1 − p_t)/n + p_c(1 − p_c)/n), for arrays of runs."""
    p_c, p_t = control / users, treatment / users
    return (p_t - p_c) / np.sqrt((p_c * (1 - p_c) + p_t * (1 - p_t)) / users)


def test_fixed_horizon_welch_test_keeps_alpha_in_a_and_a_experiments() -> None:
    rng = np.random.default_rng(20240611)
    users = 2_000
    control, treatment = rng.binomial(users, RATE, size=(2, FIXED_RUNS))
    rejections = 0
    for c, t in zip(control, treatment, strict=True):
        result = absolute_difference(Proportion(users, int(c)), Proportion(users, int(t)), ALPHA)
        assert result.status is Status.OK and result.p_value is not None
        rejections += result.p_value < ALPHA
    rate = rejections / FIXED_RUNS
    # Two-sided, ±3.5 SE (SE ≈ 0.0028 at 6,000 runs): a correct test fails this with probability < 0.05%.
    assert abs(rate - ALPHA) < 3.5 * standard_error(FIXED_RUNS), rate


def test_both_sequential_modes_keep_alpha_over_20_looks_where_naive_peeking_does_not() -> None:
    control, treatment = cumulative_conversions(seed=20240612, runs=SEQUENTIAL_RUNS)
    users = USERS_PER_LOOK * np.arange(1, LOOKS + 1)
    z = welch_z(control, treatment, users)

    fractions = [look / LOOKS for look in range(1, LOOKS + 1)]
    boundaries = np.array(obrien_fleming_boundaries(fractions, ALPHA), dtype=float)
    tuning = tuning_parameter_from_plan(USERS_PER_LOOK * LOOKS, USERS_PER_LOOK * LOOKS)
    sequence_critical = np.array([confidence_sequence_critical_z(int(2 * n), ALPHA, tuning) for n in users])

    planned_rate = float(np.mean((np.abs(z) >= boundaries).any(axis=1)))
    sequence_rate = float(np.mean((np.abs(z) >= sequence_critical).any(axis=1)))
    naive_rate = float(np.mean((np.abs(z) >= 1.959963984540054).any(axis=1)))

    bound = ALPHA + 3 * standard_error(SEQUENTIAL_RUNS)  # ≈ 0.065 at 2,000 runs
    assert planned_rate <= bound, planned_rate
    assert sequence_rate <= bound, sequence_rate
    # The spending test uses its alpha (it is not trivially conservative), and the simulation can see peeking.
    assert planned_rate >= ALPHA - 4 * standard_error(SEQUENTIAL_RUNS), planned_rate
    assert naive_rate > 0.15, naive_rate


def test_the_vectorised_decisions_are_the_engines() -> None:
    """The simulation's z and thresholds give the same decisions as the engine's public functions, look by look."""
    control, treatment = cumulative_conversions(seed=20240613, runs=30)
    fractions = [look / LOOKS for look in range(1, LOOKS + 1)]
    tuning = tuning_parameter_from_plan(USERS_PER_LOOK * LOOKS, USERS_PER_LOOK * LOOKS)
    users = USERS_PER_LOOK * np.arange(1, LOOKS + 1)
    z = welch_z(control, treatment, users)
    boundaries = obrien_fleming_boundaries(fractions, ALPHA)
    for run in range(control.shape[0]):
        for look in range(LOOKS):
            n = int(users[look])
            arms = Proportion(n, int(control[run, look])), Proportion(n, int(treatment[run, look]))
            planned = group_sequential_compare(*arms, EffectKind.ABSOLUTE, fractions[: look + 1], ALPHA)
            sequence = confidence_sequence(*arms, EffectKind.ABSOLUTE, ALPHA, tuning_parameter=tuning)
            assert planned.statistic is not None and sequence.p_value is not None
            assert math.isclose(planned.statistic, z[run, look], rel_tol=1e-12)
            assert planned.boundary == boundaries[look]
            critical = confidence_sequence_critical_z(2 * n, ALPHA, tuning)
            assert (sequence.p_value <= ALPHA) == (abs(z[run, look]) >= critical)
