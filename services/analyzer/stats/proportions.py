"""Tests of two proportions that stay valid when an arm converts at 0% or 100%, where Welch's variance is 0.

Used for the absolute difference p_t − p_c when the Wald/Welch approach breaks down at the boundary.
"""

from __future__ import annotations

import math

from scipy import stats

from services.analyzer.stats.results import Comparison, EffectKind, Method, Status
from splitstream.statistics import Proportion

MIN_EXPECTED_CELL = 5.0
"""Cochran's rule: below 5 expected users in a cell of the 2×2 table the normal approximation is not trusted."""


def wilson_interval(arm: Proportion, alpha: float) -> tuple[float, float]:
    """Wilson's score interval for one rate at 1 − α (scipy's ``binomtest(...).proportion_ci(method="wilson")``)."""
    interval = stats.binomtest(arm.conversions, arm.n).proportion_ci(confidence_level=1 - alpha, method="wilson")
    return float(interval.low), float(interval.high)


def newcombe_interval(control: Proportion, treatment: Proportion, alpha: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for d = p_t − p_c (Newcombe 1998, method 10).

    With Wilson intervals (l_t, u_t) and (l_c, u_c) at 1 − α:
    L = d − √((p_t − l_t)² + (u_c − p_c)²),  U = d + √((u_t − p_t)² + (p_c − l_c)²).
    Unlike the Wald interval it keeps a positive width when an arm is at 0% or 100%.
    """
    p_t, p_c = treatment.mean, control.mean
    low_t, high_t = wilson_interval(treatment, alpha)
    low_c, high_c = wilson_interval(control, alpha)
    difference = p_t - p_c
    return (
        difference - math.hypot(p_t - low_t, high_c - p_c),
        difference + math.hypot(high_t - p_t, p_c - low_c),
    )


def pooled_z_test(control: Proportion, treatment: Proportion) -> tuple[float, float, float]:
    """Two-proportion z-test with the pooled rate under H0 (statsmodels ``proportions_ztest``, prop_var=False).

    p̄ = (x_t + x_c)/(n_t + n_c),  SE₀ = √(p̄(1 − p̄)(1/n_t + 1/n_c)),  z = (p_t − p_c)/SE₀,  p = 2·Φ̄(|z|).
    Needs 0 < p̄ < 1. Returns (z, p, SE₀).
    """
    pooled = (treatment.conversions + control.conversions) / (treatment.n + control.n)
    std_error = math.sqrt(pooled * (1 - pooled) * (1 / treatment.n + 1 / control.n))
    z = (treatment.mean - control.mean) / std_error
    return z, float(2 * stats.norm.sf(abs(z))), std_error


def fisher_exact_p(control: Proportion, treatment: Proportion) -> float:
    """Two-sided p-value of Fisher's exact test of the table [[x_t, n_t − x_t], [x_c, n_c − x_c]]."""
    table = [
        [treatment.conversions, treatment.n - treatment.conversions],
        [control.conversions, control.n - control.conversions],
    ]
    return float(stats.fisher_exact(table).pvalue)


def smallest_expected_cell(control: Proportion, treatment: Proportion) -> float:
    """min over the 2×2 table of n_arm·p̄ and n_arm·(1 − p̄), the expected counts under H0."""
    total = control.n + treatment.n
    converted = control.conversions + treatment.conversions
    return min(arm.n * share for arm in (control, treatment) for share in (converted / total, 1 - converted / total))


def boundary_difference(control: Proportion, treatment: Proportion, alpha: float) -> Comparison:
    """Absolute difference when an arm's rate is 0% or 100% (each arm needs n ≥ 1).

    The p-value comes from the pooled z-test when every expected cell is ≥ 5, else from Fisher's exact test;
    the interval is Newcombe's. When both arms sit at the same boundary the exact p-value is 1: the data carry
    no evidence of a difference, and the reason says so.
    """
    low, high = newcombe_interval(control, treatment, alpha)
    effect = treatment.mean - control.mean
    at_boundary = ", ".join(
        f"{name} converted at {arm.mean:.0%}"
        for name, arm in (("control", control), ("treatment", treatment))
        if arm.conversions in (0, arm.n)
    )
    if smallest_expected_cell(control, treatment) >= MIN_EXPECTED_CELL:
        z, p_value, std_error = pooled_z_test(control, treatment)
        return Comparison(
            kind=EffectKind.ABSOLUTE,
            method=Method.POOLED_Z,
            status=Status.OK,
            reason=f"{at_boundary}: Welch's variance is 0 there, so the pooled two-proportion z-test is used",
            effect=effect,
            ci_lower=low,
            ci_upper=high,
            p_value=p_value,
            std_error=std_error,
            statistic=z,
        )
    reason = (
        f"{at_boundary}: Welch's variance is 0 there and an expected count is below {MIN_EXPECTED_CELL:g}, "
        "so Fisher's exact test is used"
    )
    if control.mean == treatment.mean:
        reason += "; both arms sit at the same boundary, so the data carry no evidence of a difference (p = 1)"
    return Comparison(
        kind=EffectKind.ABSOLUTE,
        method=Method.FISHER_EXACT,
        status=Status.OK,
        reason=reason,
        effect=effect,
        ci_lower=low,
        ci_upper=high,
        p_value=fisher_exact_p(control, treatment),
    )


def is_at_boundary(arm: Proportion) -> bool:
    return arm.conversions in (0, arm.n)
