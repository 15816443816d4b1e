"""CUPED beyond the golden cases: θ is the pooled OLS slope, the adjustment is var(y − θx), and the edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from services.analyzer.stats.cuped import adjusted_estimate, compare_cuped, pooled_theta
from services.analyzer.stats.results import Status
from splitstream.statistics import CovariateMoments


def users(rng: np.random.Generator, n: int, lift: float = 0.0, noise: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) per user: a user's level u ~ Gamma(2, 10) shows in both periods, with independent noise."""
    level = rng.gamma(2.0, 10.0, size=n)
    pre = np.round(level * np.exp(rng.normal(0, noise, size=n)), 2)
    post = np.round(level * (1 + lift) * np.exp(rng.normal(0, noise, size=n)), 2)
    return post, pre


def moments(y: np.ndarray, x: np.ndarray) -> CovariateMoments:
    return CovariateMoments.of(list(y), list(x))


def test_theta_is_the_ols_slope_of_y_on_x_over_both_arms_pooled() -> None:
    rng = np.random.default_rng(21)
    (y_c, x_c), (y_t, x_t) = users(rng, 700), users(rng, 500, lift=0.05)
    slope = np.polyfit(np.concatenate([x_c, x_t]), np.concatenate([y_c, y_t]), 1)[0]
    assert pooled_theta(moments(y_c, x_c), moments(y_t, x_t)) == pytest.approx(slope, rel=1e-9)


def test_adjusted_arm_is_the_mean_and_variance_of_y_minus_theta_x() -> None:
    rng = np.random.default_rng(22)
    y, x = users(rng, 900)
    theta = 0.7
    estimate = adjusted_estimate(moments(y, x), theta)
    assert estimate.mean == pytest.approx(float(np.mean(y - theta * x)), rel=1e-9)
    assert estimate.variance == pytest.approx(float(np.var(y - theta * x, ddof=1)), rel=1e-9)
    assert estimate.baseline == pytest.approx(float(np.mean(y)), rel=1e-12)


def test_adjustment_removes_the_variance_the_covariate_explains() -> None:
    """With one θ fitted on the pooled data, Var(adjusted)/Var(raw) ≈ 1 − ρ² of y and x (Deng et al. 2013)."""
    rng = np.random.default_rng(23)
    (y_c, x_c), (y_t, x_t) = users(rng, 20_000), users(rng, 20_000, lift=0.03)
    result = compare_cuped(moments(y_c, x_c), moments(y_t, x_t))
    correlation = np.corrcoef(np.concatenate([x_c, x_t]), np.concatenate([y_c, y_t]))[0, 1]
    ratio = result.variance_ratio_absolute
    assert ratio is not None and ratio == pytest.approx(1 - correlation**2, abs=0.02)
    assert result.variance_reduction_absolute == pytest.approx(1 - ratio)
    adjusted, unadjusted = result.adjusted.absolute, result.unadjusted.absolute
    assert adjusted.std_error is not None and unadjusted.std_error is not None
    assert adjusted.std_error < 0.8 * unadjusted.std_error
    # Same users, same effect on average: the estimates differ by θ·(x̄_t − x̄_c), pre-period noise only.
    assert adjusted.effect is not None and unadjusted.effect is not None
    assert adjusted.effect == pytest.approx(unadjusted.effect - result.theta * (np.mean(x_t) - np.mean(x_c)), rel=1e-9)


def test_adjusted_effect_is_unbiased_and_its_interval_covers_at_the_nominal_rate() -> None:
    """Under no effect, over repeated small experiments: mean adjusted effect ≈ 0 and 95% intervals cover 0."""
    rng = np.random.default_rng(24)
    covered, effects = 0, []
    repeats = 400
    for _ in range(repeats):
        result = compare_cuped(moments(*users(rng, 200)), moments(*users(rng, 200)))
        absolute = result.adjusted.absolute
        assert absolute.ci_lower is not None and absolute.ci_upper is not None and absolute.effect is not None
        covered += absolute.ci_lower <= 0 <= absolute.ci_upper
        effects.append(absolute.effect)
    # Binomial(400, 0.95) lies in [368, 392] with probability > 99.9%.
    assert 368 <= covered <= 392
    assert abs(float(np.mean(effects))) < 4 * float(np.std(effects)) / np.sqrt(repeats)


def test_a_covariate_without_variance_means_no_adjustment() -> None:
    rng = np.random.default_rng(25)
    y_c, _ = users(rng, 300)
    y_t, _ = users(rng, 300, lift=0.1)
    control, treatment = moments(y_c, np.zeros(300)), moments(y_t, np.zeros(300))
    result = compare_cuped(control, treatment)
    assert result.theta == 0.0
    assert result.adjusted.absolute.effect == result.unadjusted.absolute.effect
    assert result.adjusted.absolute.std_error == result.unadjusted.absolute.std_error
    assert result.adjusted.relative.p_value == result.unadjusted.relative.p_value
    assert result.variance_reduction_relative == 0.0 and result.variance_reduction_absolute == 0.0


def test_an_outcome_that_is_exactly_linear_in_the_covariate_has_no_noise_left() -> None:
    x_c, x_t = np.arange(1.0, 41.0), np.arange(3.0, 43.0)
    result = compare_cuped(moments(5 + 2 * x_c, x_c), moments(5 + 2 * x_t, x_t))
    assert result.theta == pytest.approx(2.0)
    assert result.adjusted.absolute.status is Status.UNDEFINED
    assert result.adjusted.absolute.reason and "zero variance" in result.adjusted.absolute.reason
    assert result.unadjusted.absolute.status is Status.OK


def test_zero_control_mean_leaves_the_lift_undefined_but_adjusts_the_difference() -> None:
    rng = np.random.default_rng(26)
    y_t, x_t = users(rng, 200)
    control = moments(np.zeros(200), np.zeros(200))
    result = compare_cuped(control, moments(y_t, x_t))
    assert result.adjusted.relative.status is Status.UNDEFINED and result.adjusted.relative.effect is None
    assert result.adjusted.relative.reason and "control mean" in result.adjusted.relative.reason
    assert result.adjusted.absolute.status is Status.OK
    assert result.variance_ratio_relative is None and result.variance_reduction_relative is None


@pytest.mark.parametrize(
    ("control", "treatment", "status"),
    [
        (CovariateMoments.zero(), CovariateMoments.of([1.0, 2.0, 3.0], [1.0, 1.0, 2.0]), Status.INSUFFICIENT_DATA),
        (CovariateMoments.of([4.0], [3.0]), CovariateMoments.of([1.0, 2.0, 3.0], [1.0, 1.0, 2.0]),
         Status.INSUFFICIENT_DATA),
        (CovariateMoments.of([2.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0]),
         CovariateMoments.of([2.0] * 4, [1.0, 3.0, 2.0, 7.0]), Status.UNDEFINED),
    ],
)
def test_degenerate_arms_get_a_status_and_a_reason(
    control: CovariateMoments, treatment: CovariateMoments, status: Status
) -> None:
    result = compare_cuped(control, treatment)
    for comparison in (result.adjusted.relative, result.adjusted.absolute):
        assert comparison.status is status and comparison.reason
        assert comparison.p_value is None
    assert result.variance_ratio_absolute is None


def test_invalid_arguments_are_rejected() -> None:
    arm = CovariateMoments.of([1.0, 2.0, 3.0], [1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="alpha"):
        compare_cuped(arm, arm, alpha=1.0)
    with pytest.raises(ValueError, match="alternative"):
        compare_cuped(arm, arm, alternative="both")
