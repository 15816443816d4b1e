"""Sequential tests beyond the golden cases: the confidence sequence's consistency, the alpha-spending boundaries
against an independent computation (scipy's multivariate normal CDF), degenerate data and bad arguments."""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from services.analyzer.stats import EffectKind, Status, relative_difference
from services.analyzer.stats.results import Method
from services.analyzer.stats.sequential import (
    always_valid_p_value,
    confidence_sequence,
    confidence_sequence_critical_z,
    confidence_sequence_from_estimate,
    confidence_sequence_rho,
    group_sequential_compare,
    group_sequential_test,
    information_fractions_of,
    obrien_fleming_alpha_spent,
    obrien_fleming_boundaries,
    tuning_parameter_from_plan,
)
from splitstream.statistics import Proportion, SampleMoments

CONTROL, TREATMENT = Proportion(30_000, 3_000), Proportion(30_000, 3_180)


def numbers_are_finite_or_none(result: Any) -> bool:
    values = [getattr(result, f.name) for f in dataclasses.fields(result)]
    return all(not isinstance(v, float) or math.isfinite(v) for v in values)


# --- confidence sequence --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    z=st.floats(-12, 12),
    total_users=st.integers(2, 10_000_000),
    tuning=st.floats(100, 1e7),
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]),
)
def test_p_value_is_below_alpha_exactly_when_zero_is_outside_the_sequence(
    z: float, total_users: int, tuning: float, alpha: float
) -> None:
    critical = confidence_sequence_critical_z(total_users, alpha, tuning)
    p_value = always_valid_p_value(z, total_users, alpha, tuning)
    assert 0 <= p_value <= 1
    if abs(abs(z) - critical) > 1e-9:
        assert (p_value <= alpha) == (abs(z) >= critical)
    # Always wider than the fixed-horizon interval: the price of peeking.
    assert critical > stats.norm.isf(alpha / 2)


def test_half_width_is_the_waudby_smith_formula_in_gbstats_form() -> None:
    """σ̂·√(2(Nρ²+1)/(N²ρ²)·ln(√(Nρ²+1)/α)) with σ̂² = N·SE² equals SE·c_N."""
    std_error, total, alpha, tuning = 0.013, 48_000, 0.05, 60_000.0
    rho = confidence_sequence_rho(alpha, tuning)
    unit_sd = std_error * math.sqrt(total)
    gbstats_form = unit_sd * math.sqrt(
        2 * (total * rho**2 + 1) / (total**2 * rho**2) * math.log(math.sqrt(total * rho**2 + 1) / alpha)
    )
    result = confidence_sequence_from_estimate(0.02, std_error, total, alpha, tuning_parameter=tuning)
    assert result.ci_upper is not None and result.ci_lower is not None
    assert (result.ci_upper - result.ci_lower) / 2 == pytest.approx(gbstats_form, rel=1e-12)


@pytest.mark.parametrize("total_users", [1_000, 60_000, 1_000_000])
def test_sequence_is_tightest_when_the_tuning_parameter_is_the_sample_read(total_users: int) -> None:
    """ρ is chosen to minimise the width at N = N*: that is what setting N* from the plan buys."""
    candidates = np.geomspace(10, 1e9, 2_000)
    critical = [confidence_sequence_critical_z(total_users, 0.05, float(t)) for t in candidates]
    best = candidates[int(np.argmin(critical))]
    assert total_users / 1.2 < best < total_users * 1.2


def test_tuning_from_the_plan_is_narrower_than_the_default_5000() -> None:
    planned = tuning_parameter_from_plan(30_000, 30_000)
    assert planned == 60_000
    tuned = confidence_sequence(CONTROL, TREATMENT, EffectKind.RELATIVE, tuning_parameter=planned)
    default = confidence_sequence(CONTROL, TREATMENT, EffectKind.RELATIVE, tuning_parameter=5_000)
    assert tuned.status is Status.OK and default.status is Status.OK
    assert tuned.ci_lower is not None and tuned.ci_upper is not None
    assert default.ci_lower is not None and default.ci_upper is not None
    assert tuned.ci_upper - tuned.ci_lower < 0.95 * (default.ci_upper - default.ci_lower)
    assert tuned.p_value is not None and default.p_value is not None and tuned.p_value < default.p_value


def test_confidence_sequence_reuses_the_welch_estimate() -> None:
    fixed = relative_difference(CONTROL, TREATMENT)
    result = confidence_sequence(CONTROL, TREATMENT, EffectKind.RELATIVE, tuning_parameter=60_000)
    assert result.method is Method.CONFIDENCE_SEQUENCE and result.total_users == 60_000
    assert result.effect == fixed.effect and result.std_error == fixed.std_error
    assert result.ci_lower is not None and fixed.ci_lower is not None and result.ci_lower < fixed.ci_lower
    assert numbers_are_finite_or_none(result)


@pytest.mark.parametrize(
    ("control", "treatment", "kind", "status"),
    [
        (Proportion(1, 0), Proportion(100, 10), EffectKind.ABSOLUTE, Status.INSUFFICIENT_DATA),
        (Proportion(100, 0), Proportion(100, 10), EffectKind.RELATIVE, Status.UNDEFINED),
        (Proportion(100, 0), Proportion(100, 10), EffectKind.ABSOLUTE, Status.UNDEFINED),
        (SampleMoments(10, 20.0, 40.0), SampleMoments(10, 20.0, 40.0), EffectKind.ABSOLUTE, Status.UNDEFINED),
    ],
)
def test_degenerate_data_gives_a_status_and_reason(
    control: Proportion | SampleMoments, treatment: Proportion | SampleMoments, kind: EffectKind, status: Status
) -> None:
    sequence = confidence_sequence(control, treatment, kind, tuning_parameter=1_000)
    planned = group_sequential_compare(control, treatment, kind, [0.5])
    for result in (sequence, planned):
        assert result.status is status and result.reason
        assert result.ci_lower is None and result.ci_upper is None
        assert numbers_are_finite_or_none(result)
    assert sequence.p_value is None
    assert planned.reject is False and planned.boundary is None


def test_zero_standard_error_is_undefined_not_certain() -> None:
    sequence = confidence_sequence_from_estimate(0.1, 0.0, 100, tuning_parameter=100)
    planned = group_sequential_test(0.1, 0.0, [0.5])
    assert sequence.status is Status.UNDEFINED and sequence.p_value is None and sequence.reason
    assert planned.status is Status.UNDEFINED and not planned.reject and planned.reason


@pytest.mark.parametrize(
    "call",
    [
        lambda: confidence_sequence(CONTROL, TREATMENT, EffectKind.RELATIVE, 1.5, tuning_parameter=1_000),
        lambda: confidence_sequence(CONTROL, TREATMENT, EffectKind.RELATIVE, tuning_parameter=0),
        lambda: confidence_sequence(CONTROL, TREATMENT, EffectKind.RELATIVE, tuning_parameter=math.nan),
        lambda: confidence_sequence_from_estimate(0.1, -1.0, 100, tuning_parameter=100),
        lambda: confidence_sequence_critical_z(0, 0.05, 100),
        lambda: tuning_parameter_from_plan(0, 100),
        lambda: obrien_fleming_boundaries([]),
        lambda: obrien_fleming_boundaries([0.5, 0.5]),
        lambda: obrien_fleming_boundaries([0.6, 0.3]),
        lambda: obrien_fleming_boundaries([0.0, 0.3]),
        lambda: obrien_fleming_boundaries([math.nan]),
        lambda: obrien_fleming_boundaries([0.5], alpha=0),
        lambda: group_sequential_test(0.1, -0.1, [0.5]),
        lambda: information_fractions_of([100, 200], 0),
    ],
)
def test_invalid_arguments_raise(call: Any) -> None:
    with pytest.raises(ValueError):
        call()


# --- group-sequential (O'Brien–Fleming alpha spending) ----------------------------------------------------------


def test_spending_function_is_lan_demets_obrien_fleming() -> None:
    z = stats.norm.isf(0.025)
    for t in (0.1, 0.25, 0.5, 0.9):
        assert obrien_fleming_alpha_spent(t) == pytest.approx(2 - 2 * stats.norm.cdf(z / math.sqrt(t)), rel=1e-12)
    assert obrien_fleming_alpha_spent(1.0) == 0.05
    assert obrien_fleming_alpha_spent(1.3) == 0.05


def test_a_single_look_at_the_horizon_is_the_fixed_z_test() -> None:
    (boundary,) = obrien_fleming_boundaries([1.0], alpha=0.05)
    assert boundary == pytest.approx(stats.norm.isf(0.025), rel=1e-9)


@pytest.mark.parametrize(
    "fractions",
    [(0.25, 0.5, 0.75, 1.0), (0.1, 0.45, 0.5, 1.0), (0.3, 0.7, 1.2)],
)
def test_boundaries_spend_exactly_the_planned_alpha(fractions: tuple[float, ...]) -> None:
    """1 − P(|Z_1| < c_1, …, |Z_k| < c_k) = α*(t_k), with corr(Z_i, Z_j) = √(t_i/t_j), by Genz's algorithm."""
    alpha = 0.05
    boundaries = np.array(obrien_fleming_boundaries(fractions, alpha), dtype=float)
    t = np.array(fractions)
    correlation = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    for k in range(1, len(fractions) + 1):
        normal = stats.multivariate_normal(np.zeros(k), correlation[:k, :k], abseps=1e-6, releps=1e-6, seed=7)
        crossed = 1 - normal.cdf(boundaries[:k], lower_limit=-boundaries[:k])
        assert crossed == pytest.approx(obrien_fleming_alpha_spent(fractions[k - 1], alpha), abs=1e-5)


def test_boundaries_fall_over_equally_spaced_looks_and_end_above_the_fixed_critical_value() -> None:
    boundaries = obrien_fleming_boundaries([k / 20 for k in range(1, 21)])
    assert all(b is not None for b in boundaries)
    values = [b for b in boundaries if b is not None]
    assert all(later < earlier for earlier, later in itertools.pairwise(values))
    assert stats.norm.isf(0.025) < values[-1] < stats.norm.isf(0.025) + 0.25
    assert values[0] > 8  # almost nothing is spent at 5% of the information


def test_a_looks_boundary_depends_only_on_the_looks_taken_so_far() -> None:
    fractions = (0.2, 0.35, 0.6, 0.8, 1.0)
    full = obrien_fleming_boundaries(fractions)
    for k in range(1, len(fractions)):
        assert obrien_fleming_boundaries(fractions[:k]) == pytest.approx(full[:k], rel=1e-12)


def test_rejection_follows_the_boundary_and_the_repeated_interval() -> None:
    fractions = information_fractions_of([15_000, 30_000, 45_000], planned_users=60_000)
    assert fractions == (0.25, 0.5, 0.75)
    boundary = obrien_fleming_boundaries(fractions)[-1]
    assert boundary is not None
    for z in (boundary - 1e-6, boundary + 1e-6, -boundary - 1e-6):
        result = group_sequential_test(z * 0.01, 0.01, fractions)
        assert result.status is Status.OK and result.reason is None and result.look == 3
        assert result.boundary == boundary and result.alpha_spent == obrien_fleming_alpha_spent(0.75)
        assert result.nominal_alpha == pytest.approx(2 * stats.norm.sf(boundary))
        assert result.reject == (abs(z) >= boundary)
        assert result.ci_lower is not None and result.ci_upper is not None
        assert result.reject == (result.ci_lower > 0 or result.ci_upper < 0)
        assert result.ci_upper - result.ci_lower == pytest.approx(2 * boundary * 0.01)


def test_past_the_horizon_with_alpha_used_up_no_look_can_reject() -> None:
    result = group_sequential_test(0.5, 0.01, [0.5, 1.0, 1.1])
    assert result.status is Status.OK and result.reason and "spent" in result.reason
    assert not result.reject and result.boundary is None and result.nominal_alpha is None
    assert result.ci_lower is None and result.ci_upper is None
    assert result.alpha_spent == 0.05
    overrun = group_sequential_test(0.5, 0.01, [0.5, 1.1])  # the first look past t = 1 spends what is left
    assert overrun.boundary is not None and overrun.reject


def test_group_sequential_compare_uses_the_welch_estimate() -> None:
    fixed = relative_difference(CONTROL, TREATMENT)
    assert fixed.effect is not None and fixed.std_error is not None
    result = group_sequential_compare(CONTROL, TREATMENT, EffectKind.RELATIVE, [0.5, 1.0])
    assert result == group_sequential_test(fixed.effect, fixed.std_error, [0.5, 1.0])
    assert result.method is Method.GROUP_SEQUENTIAL and numbers_are_finite_or_none(result)
