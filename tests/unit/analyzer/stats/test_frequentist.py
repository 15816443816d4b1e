"""Properties of the Welch comparisons and their degenerate cases, on inputs beyond the golden file."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from scipy import stats

from services.analyzer.stats import (
    Arm,
    Comparison,
    EffectKind,
    Method,
    Status,
    absolute_difference,
    compare,
    compare_to_control,
    relative_difference,
    welch_dof,
)
from splitstream.statistics import Proportion, SampleMoments

ALPHAS = (0.01, 0.05, 0.1, 0.2)


def random_arms(seed: int) -> list[tuple[Arm, Arm]]:
    """Binomial and mean arm pairs of assorted sizes and effects, away from the 0%/100% boundary."""
    rng = np.random.default_rng(seed)
    pairs: list[tuple[Arm, Arm]] = []
    for _ in range(40):
        n_c, n_t = (int(x) for x in rng.integers(20, 50_000, size=2))
        rate = float(rng.uniform(0.05, 0.9))
        lift = float(rng.normal(0, 0.1))
        pairs.append((
            Proportion(n_c, int(rng.binomial(n_c, rate))),
            Proportion(n_t, int(rng.binomial(n_t, min(0.95, rate * (1 + lift))))),
        ))
        control_values = rng.lognormal(2, 1, size=int(rng.integers(5, 300)))
        treatment_values = rng.lognormal(2 + float(rng.normal(0, 0.3)), 1, size=int(rng.integers(5, 300)))
        pairs.append((SampleMoments.of(list(control_values)), SampleMoments.of(list(treatment_values))))
    return [(c, t) for c, t in pairs if c.mean > 0 and c.variance > 0 and t.variance > 0]


PAIRS = random_arms(seed=20240601)


LABELS = ("kind", "method", "status", "reason")


def every_number(comparison: Comparison) -> list[float | None]:
    return [getattr(comparison, f.name) for f in fields(comparison) if f.name not in LABELS]


@pytest.mark.parametrize("alpha", ALPHAS)
def test_interval_contains_effect_and_agrees_with_p_value(alpha: float) -> None:
    assert len(PAIRS) >= 60
    for control, treatment in PAIRS:
        result = compare(control, treatment, alpha)
        for comparison in (result.relative, result.absolute):
            assert comparison.status is Status.OK and comparison.method is Method.WELCH_T
            assert comparison.ci_lower is not None and comparison.ci_upper is not None
            assert comparison.effect is not None and comparison.p_value is not None
            assert comparison.ci_lower < comparison.effect < comparison.ci_upper
            excludes_zero = comparison.ci_lower > 0 or comparison.ci_upper < 0
            # The interval and the test come from the same t statistic, so they must agree (duality).
            assert (comparison.p_value < alpha) == excludes_zero


def test_absolute_matches_scipy_welch_on_raw_values() -> None:
    rng = np.random.default_rng(7)
    control_values, treatment_values = rng.exponential(3, 400), rng.exponential(3.4, 250)
    ours = absolute_difference(SampleMoments.of(list(control_values)), SampleMoments.of(list(treatment_values)))
    scipy_result = stats.ttest_ind(treatment_values, control_values, equal_var=False)
    assert ours.statistic == pytest.approx(scipy_result.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(scipy_result.pvalue, rel=1e-9)
    assert ours.dof == pytest.approx(scipy_result.df, rel=1e-9)
    interval = scipy_result.confidence_interval(0.95)
    assert (ours.ci_lower, ours.ci_upper) == pytest.approx((interval.low, interval.high), rel=1e-9)


def test_wider_interval_at_smaller_alpha() -> None:
    control, treatment = PAIRS[0]
    narrow, wide = absolute_difference(control, treatment, 0.2), absolute_difference(control, treatment, 0.01)
    assert narrow.ci_lower is not None and narrow.ci_upper is not None
    assert wide.ci_lower is not None and wide.ci_upper is not None
    assert wide.ci_lower < narrow.ci_lower and narrow.ci_upper < wide.ci_upper
    assert narrow.p_value == wide.p_value


def test_swapping_arms_negates_the_absolute_difference() -> None:
    for control, treatment in PAIRS[:10]:
        forward, backward = absolute_difference(control, treatment), absolute_difference(treatment, control)
        assert forward.effect is not None and backward.effect is not None
        assert backward.effect == pytest.approx(-forward.effect)
        assert backward.p_value == pytest.approx(forward.p_value)
        assert backward.dof == pytest.approx(forward.dof)


def test_welch_dof_survives_variances_whose_squares_underflow() -> None:
    # Found by hypothesis: shares of ~1e-222 square to 0.0, which divided by zero. ν is scale-free, so the tiny
    # arms must give the ν of the same arms scaled up by 1e111 (whose squares are ordinary floats).
    tiny = (SampleMoments(n=3, sum=1.5e-111, sum_squares=2.4e-222),
            SampleMoments(n=5, sum=2.0e-111, sum_squares=3.1e-222))
    scaled = SampleMoments(n=3, sum=1.5, sum_squares=2.4), SampleMoments(n=5, sum=2.0, sum_squares=3.1)
    assert welch_dof(*tiny) == pytest.approx(welch_dof(*scaled), rel=1e-9)
    constant_control = SampleMoments(n=2, sum=0.0, sum_squares=0.0)
    assert absolute_difference(constant_control, tiny[1]).dof == pytest.approx(4.0, rel=1e-12)


def test_relative_dof_is_the_unscaled_welch_dof() -> None:
    control, treatment = Proportion(3000, 300), Proportion(9000, 990)
    assert relative_difference(control, treatment).dof == pytest.approx(welch_dof(control, treatment))
    share_c, share_t = control.variance / control.n, treatment.variance / treatment.n
    by_hand = (share_c + share_t) ** 2 / (share_c**2 / (control.n - 1) + share_t**2 / (treatment.n - 1))
    assert welch_dof(control, treatment) == pytest.approx(by_hand, rel=1e-12)


def test_tiny_p_values_do_not_underflow_to_zero() -> None:
    """|t| ≈ 10: 1 − cdf rounds to 0 in double precision, the survival function does not."""
    control, treatment = Proportion(5_000_000, 500_000), Proportion(5_000_000, 509_500)
    result = absolute_difference(control, treatment)
    assert result.statistic is not None and result.p_value is not None
    assert 2 * (1 - stats.t.cdf(abs(result.statistic), result.dof)) == 0.0
    assert 0 < result.p_value < 1e-20
    # At ~10⁷ degrees of freedom the t tail is the normal tail to well within 1%.
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(result.statistic)), rel=1e-2)
    relative = relative_difference(control, treatment)
    assert relative.p_value is not None and 0 < relative.p_value < 1e-20


def test_zero_control_mean_leaves_relative_undefined_but_reports_absolute() -> None:
    control = SampleMoments(200, 0.0, 0.0)
    treatment = SampleMoments.of([0.0] * 150 + [12.5, 3.0, 40.0] * 10)
    result = compare(control, treatment)
    assert result.relative.status is Status.UNDEFINED
    assert result.relative.effect is None and result.relative.p_value is None
    assert result.relative.reason and "control mean" in result.relative.reason
    assert result.absolute.status is Status.OK
    assert result.absolute.effect == pytest.approx(treatment.mean)
    # Only the treatment arm varies, so Welch's dof collapses to its n − 1.
    assert result.absolute.dof == pytest.approx(treatment.n - 1)


def test_zero_control_rate_uses_a_test_valid_at_the_boundary() -> None:
    control, treatment = Proportion(100_000, 0), Proportion(100_000, 60)
    result = compare(control, treatment)
    assert result.relative.status is Status.UNDEFINED and result.relative.effect is None
    absolute = result.absolute
    assert absolute.status is Status.OK and absolute.method is Method.POOLED_Z
    pooled = 60 / 200_000
    z = 0.0006 / math.sqrt(pooled * (1 - pooled) * 2 / 100_000)
    assert absolute.statistic == pytest.approx(z, rel=1e-12)
    assert absolute.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    assert absolute.ci_lower is not None and absolute.ci_lower > 0
    assert absolute.p_value < 0.05


def test_few_conversions_at_the_boundary_use_fisher_exact() -> None:
    control, treatment = Proportion(40, 0), Proportion(40, 6)
    absolute = absolute_difference(control, treatment)
    assert absolute.method is Method.FISHER_EXACT
    assert absolute.p_value == pytest.approx(stats.fisher_exact([[6, 34], [0, 40]]).pvalue, rel=1e-12)
    assert absolute.ci_lower is not None and absolute.ci_upper is not None
    assert absolute.ci_lower < absolute.effect < absolute.ci_upper  # type: ignore[operator]


def test_treatment_at_full_conversion_keeps_the_relative_lift_but_not_its_test() -> None:
    result = compare(Proportion(400, 300), Proportion(400, 400))
    assert result.relative.status is Status.UNDEFINED
    assert result.relative.effect == pytest.approx(400 / 300 - 1)
    assert result.relative.p_value is None and result.relative.ci_lower is None
    assert result.absolute.status is Status.OK and result.absolute.method is Method.POOLED_Z


def test_constant_arms_are_undefined_not_certain() -> None:
    result = compare(SampleMoments(50, 100.0, 200.0), SampleMoments(60, 180.0, 540.0))
    for comparison in (result.relative, result.absolute):
        assert comparison.status is Status.UNDEFINED
        assert comparison.p_value is None and comparison.std_error is None
        assert comparison.reason and "zero variance" in comparison.reason
    assert result.absolute.effect == pytest.approx(1.0)
    assert result.relative.effect == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("control", "treatment", "effect_reported"),
    [
        (Proportion(0, 0), Proportion(0, 0), False),
        (Proportion(0, 0), Proportion(10, 3), False),
        (Proportion(1, 1), Proportion(10, 3), True),
        (SampleMoments(1, 4.0, 16.0), SampleMoments(30, 90.0, 400.0), True),
    ],
)
def test_fewer_than_two_users_is_insufficient_data(control: Arm, treatment: Arm, effect_reported: bool) -> None:
    result = compare(control, treatment)
    for comparison in (result.relative, result.absolute):
        assert comparison.status is Status.INSUFFICIENT_DATA
        assert comparison.reason and "at least 2 users" in comparison.reason
        assert comparison.p_value is None and comparison.ci_lower is None
    assert (result.absolute.effect is not None) == effect_reported


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        (Proportion(0, 0), Proportion(0, 0)),
        (Proportion(1000, 0), Proportion(1000, 0)),
        (Proportion(3, 3), Proportion(3, 0)),
        (Proportion(10, 10), Proportion(10, 10)),
        (SampleMoments(2, 0.0, 0.0), SampleMoments(2, 0.0, 0.0)),
        (SampleMoments(5, -10.0, 30.0), SampleMoments(5, 10.0, 30.0)),
        (SampleMoments(10, 1e200, 1e300), SampleMoments(10, 1e200, 1.7e308)),
    ],
)
def test_degenerate_inputs_never_give_nan_or_silent_results(control: Arm, treatment: Arm) -> None:
    result = compare(control, treatment)
    for comparison in (result.relative, result.absolute):
        assert all(x is None or math.isfinite(x) for x in every_number(comparison))
        if comparison.status is not Status.OK or comparison.method is not Method.WELCH_T:
            assert comparison.reason
        if comparison.status is not Status.OK:
            assert comparison.p_value is None


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_alpha_outside_unit_interval_is_rejected(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        compare(Proportion(100, 10), Proportion(100, 12), alpha)


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError):
        Proportion(-5, 0)
    with pytest.raises(ValueError):
        SampleMoments(-5, 1.0, 1.0)


def test_arms_of_different_kinds_are_rejected() -> None:
    with pytest.raises(ValueError, match="same kind"):
        compare(Proportion(100, 10), SampleMoments(100, 10.0, 10.0))


def test_each_treatment_is_compared_with_the_control() -> None:
    arms = [Proportion(5000, 500), Proportion(5000, 540), Proportion(4000, 380), Proportion(6000, 700)]
    results = compare_to_control(arms, alpha=0.1)
    assert len(results) == 3
    for treatment, result in zip(arms[1:], results, strict=True):
        assert result == compare(arms[0], treatment, alpha=0.1)
        assert result.relative.kind is EffectKind.RELATIVE and result.absolute.kind is EffectKind.ABSOLUTE
        assert result.absolute.effect == pytest.approx(treatment.mean - arms[0].mean)


def test_compare_to_control_needs_a_treatment() -> None:
    with pytest.raises(ValueError, match="treatment"):
        compare_to_control([Proportion(10, 1)])
