"""Sample size and power beyond the golden cases: each method inverts its own power, variants, duration,
conditional power, bad arguments."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from services.analyzer.stats.power import (
    PowerMethod,
    achieved_power,
    cohens_h,
    comparison_alpha,
    conditional_power,
    duration_days,
    expected_z,
    sample_size,
)

RATES = st.floats(0.01, 0.6)
MDES = st.floats(0.02, 0.5) | st.floats(-0.5, -0.02)


@settings(max_examples=100, deadline=None)
@given(
    baseline=RATES, mde=MDES, power=st.floats(0.5, 0.95), variants=st.integers(2, 6),
    method=st.sampled_from(list(PowerMethod)),
)
def test_power_at_the_planned_size_is_the_power_asked_for(
    baseline: float, mde: float, power: float, variants: int, method: PowerMethod
) -> None:
    plan = sample_size(baseline, mde, 0.05, power, variants, method)
    assert achieved_power(baseline, mde, plan.exact_users_per_variant, 0.05, variants, method) == pytest.approx(
        power, abs=1e-9
    )
    assert plan.users_per_variant == math.ceil(plan.exact_users_per_variant)
    assert plan.total_users == plan.users_per_variant * variants
    assert achieved_power(baseline, mde, plan.users_per_variant, 0.05, variants, method) >= power - 1e-12


def test_normal_formula_by_hand() -> None:
    p1, p2 = 0.2, 0.22
    z = stats.norm.isf(0.025) + stats.norm.isf(0.1)
    plan = sample_size(p1, 0.1, alpha=0.05, power=0.9)
    assert plan.method is PowerMethod.NORMAL and plan.effect_size == pytest.approx(0.02)
    assert plan.exact_users_per_variant == pytest.approx(z**2 * (p1 * (1 - p1) + p2 * (1 - p2)) / 0.02**2)


def test_arcsine_counts_both_rejection_regions_so_needs_slightly_fewer_users_than_its_one_sided_formula() -> None:
    plan = sample_size(0.1, 0.05, method="arcsine")
    h = cohens_h(0.1, 0.105)
    one_region = 2 * ((stats.norm.isf(0.025) + stats.norm.isf(0.2)) / h) ** 2
    assert plan.effect_size == pytest.approx(h)
    assert one_region * (1 - 1e-4) < plan.exact_users_per_variant < one_region


@pytest.mark.parametrize("variants", [3, 4, 5])
def test_variants_split_alpha_by_bonferroni_unless_told_not_to(variants: int) -> None:
    with_correction = sample_size(0.1, 0.05, variants=variants)
    assert with_correction.alpha_per_comparison == pytest.approx(0.05 / (variants - 1))
    two_arms_at_split_alpha = sample_size(0.1, 0.05, alpha=0.05 / (variants - 1))
    assert with_correction.users_per_variant == two_arms_at_split_alpha.users_per_variant
    assert with_correction.total_users == variants * with_correction.users_per_variant
    uncorrected = sample_size(0.1, 0.05, variants=variants, bonferroni=False)
    assert uncorrected.users_per_variant == sample_size(0.1, 0.05).users_per_variant
    assert uncorrected.users_per_variant < with_correction.users_per_variant
    assert comparison_alpha(0.05, variants, bonferroni=False) == 0.05


def test_the_two_methods_agree_closely_away_from_extreme_rates() -> None:
    for baseline in (0.05, 0.2, 0.5):
        normal, arcsine = sample_size(baseline, 0.05), sample_size(baseline, 0.05, method="arcsine")
        assert normal.exact_users_per_variant == pytest.approx(arcsine.exact_users_per_variant, rel=0.01)


def test_expected_z_at_the_planned_size_is_the_sum_of_the_quantiles() -> None:
    plan = sample_size(0.1, 0.05, power=0.8)
    assert expected_z(0.1, 0.05, plan.exact_users_per_variant) == pytest.approx(
        stats.norm.isf(0.025) + stats.norm.ppf(0.8)
    )
    assert expected_z(0.1, -0.05, plan.exact_users_per_variant) < 0


@pytest.mark.parametrize(("t", "drift"), [(0.3, 2.8), (0.5, 1.0), (0.8, 0.0)])
def test_conditional_power_averages_to_the_unconditional_power(t: float, drift: float) -> None:
    """E over Z_t ~ N(θ√t, 1) of CP(Z_t) = P(|Z_final| ≥ z_{1−α/2}) with Z_final ~ N(θ, 1)."""
    density = stats.norm(drift * math.sqrt(t), 1)
    averaged, _ = integrate.quad(
        lambda z: conditional_power(z, t, 0.05, final_drift=drift) * density.pdf(z), -12, 12, epsabs=1e-11
    )
    critical = stats.norm.isf(0.025)
    assert averaged == pytest.approx(stats.norm.sf(critical - drift) + stats.norm.cdf(-critical - drift), rel=1e-7)


def test_conditional_power_under_the_current_trend() -> None:
    assert conditional_power(0.0, 0.5) == pytest.approx(2 * stats.norm.sf(stats.norm.isf(0.025) / math.sqrt(0.5)))
    rising = [conditional_power(z, 0.5) for z in (0.5, 1.0, 2.0, 3.0)]
    assert all(later > earlier for earlier, later in itertools.pairwise(rising))
    assert conditional_power(4.0, 0.9) > 0.999


def test_duration_rounds_up_to_whole_days() -> None:
    assert duration_days(57_760, 2, daily_users=5_000) == 24
    assert duration_days(10_000, 2, daily_users=2_000) == 10
    assert duration_days(10_000, 4, daily_users=2_000, traffic_fraction=0.5) == 40


@pytest.mark.parametrize(
    "call",
    [
        lambda: sample_size(0.0, 0.1),
        lambda: sample_size(1.0, 0.1),
        lambda: sample_size(0.1, 0.0),
        lambda: sample_size(0.6, 1.0),
        lambda: sample_size(0.1, -1.0),
        lambda: sample_size(0.1, 0.1, alpha=1.0),
        lambda: sample_size(0.1, 0.1, power=1.0),
        lambda: sample_size(0.1, 0.1, power=0.01),
        lambda: sample_size(0.1, 0.1, variants=1),
        lambda: sample_size(0.1, 0.1, method="bayesian"),
        lambda: achieved_power(0.1, 0.1, 0),
        lambda: conditional_power(1.0, 1.0),
        lambda: conditional_power(math.nan, 0.5),
        lambda: duration_days(1_000, 2, daily_users=0),
        lambda: duration_days(1_000, 2, daily_users=100, traffic_fraction=0),
    ],
)
def test_invalid_arguments_raise(call: Any) -> None:
    with pytest.raises(ValueError):
        call()
