"""Ratio metrics by the delta method, beyond the golden cases: the variance formula, its calibration, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from services.analyzer.stats.frequentist import Alternative, compare
from services.analyzer.stats.ratio import compare_ratio, ratio_estimate, ratio_of, ratio_unit_variance
from services.analyzer.stats.results import Method, Status
from splitstream.statistics import RatioMoments


def orders_and_revenue(
    rng: np.random.Generator, users: int, order_value: float = 30.0
) -> tuple[list[float], list[float]]:
    """Per user: orders ~ Poisson(1.5) and revenue = orders × a per-user basket value ~ LogNormal."""
    orders = rng.poisson(1.5, size=users).astype(float)
    revenue = np.round(orders * order_value * rng.lognormal(0, 0.6, size=users), 2)
    return list(revenue), list(orders)


def test_unit_variance_is_the_gradient_form_of_the_delta_method() -> None:
    """v_R = ∇gᵀ Σ ∇g with g(μ_m, μ_d) = μ_m/μ_d, ∇g = (1/μ_d, −μ_m/μ_d²) and Σ the sample covariance matrix."""
    revenue, orders = orders_and_revenue(np.random.default_rng(11), 500)
    means = np.array([np.mean(revenue), np.mean(orders)])
    gradient = np.array([1 / means[1], -means[0] / means[1] ** 2])
    by_gradient = gradient @ np.cov(revenue, orders) @ gradient
    arm = RatioMoments.of(revenue, orders)
    assert ratio_of(arm) == pytest.approx(sum(revenue) / sum(orders), rel=1e-12)
    assert ratio_unit_variance(arm) == pytest.approx(by_gradient, rel=1e-9)


def test_unit_variance_predicts_the_spread_of_the_ratio_across_repeated_experiments() -> None:
    rng = np.random.default_rng(12)
    users, repeats = 400, 1500
    orders = rng.poisson(1.5, size=(repeats, users)).astype(float)
    revenue = orders * 30.0 * rng.lognormal(0, 0.6, size=(repeats, users))
    ratios = revenue.sum(axis=1) / orders.sum(axis=1)
    predicted = [
        ratio_unit_variance(RatioMoments.of(list(revenue[i]), list(orders[i]))) / users for i in range(0, repeats, 15)
    ]
    # 1500 repeats estimate a variance to about ±4% (2σ); the delta method's own bias at n = 400 is far smaller.
    assert float(np.mean(predicted)) == pytest.approx(float(np.var(ratios, ddof=1)), rel=0.1)


def test_ratio_arms_are_compared_like_means_of_their_estimates() -> None:
    rng = np.random.default_rng(13)
    control = RatioMoments.of(*orders_and_revenue(rng, 800))
    treatment = RatioMoments.of(*orders_and_revenue(rng, 700, order_value=33.0))
    result = compare_ratio(control, treatment, alpha=0.1)
    assert result == compare(ratio_estimate(control), ratio_estimate(treatment), 0.1)
    assert result.absolute.effect == pytest.approx(ratio_of(treatment) - ratio_of(control), rel=1e-12)
    assert result.relative.effect == pytest.approx(ratio_of(treatment) / ratio_of(control) - 1, rel=1e-9)
    assert result.absolute.method is Method.WELCH_T and result.absolute.status is Status.OK


def test_one_sided_alternative_reaches_the_ratio_test() -> None:
    rng = np.random.default_rng(14)
    control = RatioMoments.of(*orders_and_revenue(rng, 600))
    treatment = RatioMoments.of(*orders_and_revenue(rng, 600, order_value=34.0))
    two_sided = compare_ratio(control, treatment).absolute
    greater = compare_ratio(control, treatment, alternative="greater").absolute
    assert two_sided.p_value is not None and greater.p_value is not None and greater.statistic is not None
    assert greater.statistic > 0
    assert greater.p_value == pytest.approx(two_sided.p_value / 2, rel=1e-9)
    assert greater.ci_upper is None and greater.ci_lower is not None and greater.reason
    assert compare_ratio(control, treatment, alternative=Alternative.LESS).absolute.ci_lower is None


def test_zero_denominator_sum_leaves_the_ratio_undefined() -> None:
    control = RatioMoments.of([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    treatment = RatioMoments.of([10.0, 0.0, 25.0], [1.0, 0.0, 2.0])
    result = compare_ratio(control, treatment)
    for comparison in (result.relative, result.absolute):
        assert comparison.status is Status.UNDEFINED
        assert comparison.reason and "denominator" in comparison.reason and "control" in comparison.reason
        assert comparison.effect is None and comparison.p_value is None


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        (RatioMoments.zero(), RatioMoments.of([10.0, 5.0], [1.0, 1.0])),
        (RatioMoments.of([10.0], [2.0]), RatioMoments.of([10.0, 5.0, 8.0], [1.0, 1.0, 2.0])),
    ],
)
def test_fewer_than_two_users_is_insufficient_data(control: RatioMoments, treatment: RatioMoments) -> None:
    result = compare_ratio(control, treatment)
    for comparison in (result.relative, result.absolute):
        assert comparison.status is Status.INSUFFICIENT_DATA and comparison.reason
        assert comparison.p_value is None


def test_zero_numerator_in_control_keeps_the_absolute_difference() -> None:
    control = RatioMoments.of([0.0] * 50, [1.0, 2.0] * 25)
    treatment = RatioMoments.of([10.0, 0.0, 30.0, 5.0] * 10, [1.0, 1.0, 2.0, 1.0] * 10)
    result = compare_ratio(control, treatment)
    assert result.relative.status is Status.UNDEFINED
    assert result.relative.reason and "control mean" in result.relative.reason
    assert result.absolute.status is Status.OK and result.absolute.p_value is not None
    assert result.absolute.effect == pytest.approx(ratio_of(treatment))


def test_every_user_at_the_same_ratio_has_no_variance() -> None:
    """m = R·d for every user makes m − R·d ≡ 0, and v_R = var(m − R·d)/μ_d² = 0 exactly."""
    orders = [1.0, 2.0, 3.0, 1.0, 4.0]
    control = RatioMoments.of([20.0 * d for d in orders], orders)
    treatment = RatioMoments.of([25.0 * d for d in orders], orders)
    assert ratio_unit_variance(control) == 0.0
    result = compare_ratio(control, treatment)
    assert result.absolute.status is Status.UNDEFINED and result.absolute.effect == pytest.approx(5.0)
    assert result.absolute.reason and "zero variance" in result.absolute.reason


@pytest.mark.parametrize(("alpha", "alternative"), [(0.0, "two-sided"), (1.2, "two-sided"), (0.05, "sideways")])
def test_invalid_arguments_are_rejected_even_for_degenerate_data(alpha: float, alternative: str) -> None:
    with pytest.raises(ValueError):
        compare_ratio(RatioMoments.zero(), RatioMoments.zero(), alpha, alternative)


def moments_with(n: int, means: tuple[float, float], variances: tuple[float, float], covariance: float) -> RatioMoments:
    """The sums of n users whose (m, d) have these sample means, variances and covariance."""
    (mean_m, mean_d), (var_m, var_d) = means, variances
    sum_m, sum_d = n * mean_m, n * mean_d
    return RatioMoments(
        n, sum_m, (n - 1) * var_m + sum_m * sum_m / n, sum_d, (n - 1) * var_d + sum_d * sum_d / n,
        (n - 1) * covariance + sum_m * sum_d / n,
    )


def test_tiny_p_values_of_a_large_ratio_experiment_do_not_underflow_to_zero() -> None:
    """gbstats' 2·(1 − cdf) is exactly 0 past |t| ≈ 8.3; the survival function keeps p ≈ 1e-20 and below."""
    control = moments_with(5_000_000, (24.0, 0.8), (900.0, 0.8), 20.0)
    treatment = moments_with(5_000_000, (24.13, 0.8), (900.0, 0.8), 20.0)
    result = compare_ratio(control, treatment)
    for comparison in (result.relative, result.absolute):
        assert comparison.statistic is not None and comparison.p_value is not None
        assert 2 * (1 - stats.t.cdf(abs(comparison.statistic), comparison.dof)) == 0.0
        assert 0 < comparison.p_value < 1e-20
        assert comparison.p_value == pytest.approx(2 * stats.norm.sf(abs(comparison.statistic)), rel=1e-2)
