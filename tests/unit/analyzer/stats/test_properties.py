"""Properties every comparison must have, on data hypothesis makes up (kept small so the file runs in ~1-2 s).

Values are whole cents (integers as floats): their sums are exact in double precision, so statistics merged with
``+`` must equal those of the concatenated data bit for bit, and so must every comparison made from them.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from services.analyzer.stats.bayesian import BayesianEffect, bayesian_effect
from services.analyzer.stats.cuped import compare_cuped
from services.analyzer.stats.frequentist import Alternative, absolute_difference, compare, relative_difference
from services.analyzer.stats.ratio import compare_ratio
from services.analyzer.stats.results import Comparison, EffectKind, Method, Status, TreatmentComparison
from splitstream.statistics import CovariateMoments, Proportion, RatioMoments, SampleMoments

FAST = settings(max_examples=40, deadline=None)

cents = st.integers(min_value=-2_000, max_value=50_000).map(float)
amounts = st.lists(cents, min_size=2, max_size=30)
conversions = st.lists(st.booleans(), min_size=2, max_size=60)
ratio_users = st.lists(
    st.tuples(st.integers(0, 40_000).map(float), st.integers(0, 4).map(float)), min_size=2, max_size=30
)
covariate_users = st.lists(st.tuples(cents, cents), min_size=2, max_size=30)
alphas = st.sampled_from([0.01, 0.05, 0.1, 0.2])
alternatives = st.sampled_from(list(Alternative))


def proportion(values: list[bool]) -> Proportion:
    return Proportion(len(values), sum(values))


def ratio_moments(users: list[tuple[float, float]]) -> RatioMoments:
    return RatioMoments.of([m for m, _ in users], [d for _, d in users])


def covariate_moments(users: list[tuple[float, float]]) -> CovariateMoments:
    return CovariateMoments.of([y for y, _ in users], [x for _, x in users])


def every_number(result: Comparison | BayesianEffect) -> list[Any]:
    return [getattr(result, f.name) for f in fields(result) if f.name not in ("kind", "method", "status", "reason")]


def assert_sound(result: Comparison) -> None:
    """Finite numbers or None; p in [0, 1]; an interval around the estimate; a reason for anything missing."""
    assert all(x is None or math.isfinite(x) for x in every_number(result))
    if result.status is not Status.OK:
        assert result.reason and result.p_value is None
        return
    assert result.effect is not None and result.p_value is not None
    assert 0 <= result.p_value <= 1
    assert result.ci_lower is not None or result.ci_upper is not None
    assert result.ci_lower is None or result.ci_lower <= result.effect
    assert result.ci_upper is None or result.effect <= result.ci_upper
    if result.ci_lower is None or result.ci_upper is None or result.method is not Method.WELCH_T:
        assert result.reason, "a one-sided interval or a test other than Welch's must say so"


def split_point(data: st.DataObject, values: list[Any]) -> int:
    return data.draw(st.integers(0, len(values)))


# --- merging ------------------------------------------------------------------------------------------------------


@FAST
@given(amounts, amounts, st.data())
def test_merged_mean_moments_compare_like_the_concatenated_data(
    control: list[float], treatment: list[float], data: st.DataObject
) -> None:
    k, j = split_point(data, control), split_point(data, treatment)
    merged_c = SampleMoments.of(control[:k]) + SampleMoments.of(control[k:])
    merged_t = SampleMoments.of(treatment[:j]) + SampleMoments.of(treatment[j:])
    assert (merged_c, merged_t) == (SampleMoments.of(control), SampleMoments.of(treatment))
    assert compare(merged_c, merged_t) == compare(SampleMoments.of(control), SampleMoments.of(treatment))


@FAST
@given(conversions, conversions, st.data())
def test_merged_proportions_compare_like_the_concatenated_data(
    control: list[bool], treatment: list[bool], data: st.DataObject
) -> None:
    k, j = split_point(data, control), split_point(data, treatment)
    merged_c = proportion(control[:k]) + proportion(control[k:])
    merged_t = proportion(treatment[:j]) + proportion(treatment[j:])
    assert compare(merged_c, merged_t) == compare(proportion(control), proportion(treatment))


@FAST
@given(ratio_users, ratio_users, st.data())
def test_merged_ratio_moments_compare_like_the_concatenated_data(
    control: list[tuple[float, float]], treatment: list[tuple[float, float]], data: st.DataObject
) -> None:
    k, j = split_point(data, control), split_point(data, treatment)
    merged_c = ratio_moments(control[:k]) + ratio_moments(control[k:])
    merged_t = ratio_moments(treatment[:j]) + ratio_moments(treatment[j:])
    assert (merged_c, merged_t) == (ratio_moments(control), ratio_moments(treatment))
    assert compare_ratio(merged_c, merged_t) == compare_ratio(ratio_moments(control), ratio_moments(treatment))


@FAST
@given(covariate_users, covariate_users, st.data())
def test_merged_covariate_moments_compare_like_the_concatenated_data(
    control: list[tuple[float, float]], treatment: list[tuple[float, float]], data: st.DataObject
) -> None:
    k, j = split_point(data, control), split_point(data, treatment)
    merged_c = covariate_moments(control[:k]) + covariate_moments(control[k:])
    merged_t = covariate_moments(treatment[:j]) + covariate_moments(treatment[j:])
    assert (merged_c, merged_t) == (covariate_moments(control), covariate_moments(treatment))
    assert compare_cuped(merged_c, merged_t) == compare_cuped(covariate_moments(control), covariate_moments(treatment))


# --- swapping the arms --------------------------------------------------------------------------------------------


def close(expected: float | None) -> Any:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


def assert_mirrored(forward: TreatmentComparison, backward: TreatmentComparison, lift_inverts: bool = True) -> None:
    """Absolute: −Δ with the same p and the mirrored interval. Relative: (1 + r)(1 + r') = 1 (m_t/m_c inverts)."""
    a, b = forward.absolute, backward.absolute
    assert a.status is b.status and a.method is b.method
    if a.effect is not None:
        assert b.effect == close(-a.effect)
    if a.status is Status.OK:
        assert a.ci_lower is not None and a.ci_upper is not None
        assert b.p_value == close(a.p_value)
        assert (b.ci_lower, b.ci_upper) == (close(-a.ci_upper), close(-a.ci_lower))
    r, s = forward.relative, backward.relative
    if lift_inverts and r.effect is not None and s.effect is not None:
        assert (1 + r.effect) * (1 + s.effect) == pytest.approx(1.0, rel=1e-9)


@FAST
@given(amounts, amounts)
def test_swapping_mean_arms_mirrors_the_effects(control: list[float], treatment: list[float]) -> None:
    c, t = SampleMoments.of(control), SampleMoments.of(treatment)
    assert_mirrored(compare(c, t), compare(t, c))


@FAST
@given(conversions, conversions)
def test_swapping_binomial_arms_mirrors_the_effects(control: list[bool], treatment: list[bool]) -> None:
    c, t = proportion(control), proportion(treatment)
    assert_mirrored(compare(c, t), compare(t, c))


@FAST
@given(ratio_users, ratio_users)
def test_swapping_ratio_arms_mirrors_the_effects(
    control: list[tuple[float, float]], treatment: list[tuple[float, float]]
) -> None:
    c, t = ratio_moments(control), ratio_moments(treatment)
    assert_mirrored(compare_ratio(c, t), compare_ratio(t, c))


@FAST
@given(covariate_users, covariate_users)
def test_swapping_cuped_arms_mirrors_the_adjusted_difference(
    control: list[tuple[float, float]], treatment: list[tuple[float, float]]
) -> None:
    c, t = covariate_moments(control), covariate_moments(treatment)
    forward, backward = compare_cuped(c, t), compare_cuped(t, c)
    assert forward.theta == backward.theta
    # The lift is over the unadjusted CONTROL mean, so it does not invert; the difference does.
    assert_mirrored(forward.adjusted, backward.adjusted, lift_inverts=False)
    assert_mirrored(forward.unadjusted, backward.unadjusted)


@FAST
@given(amounts, amounts)
def test_swapping_arms_mirrors_the_absolute_posterior(control: list[float], treatment: list[float]) -> None:
    c, t = SampleMoments.of(control), SampleMoments.of(treatment)
    forward = bayesian_effect(c, t, EffectKind.ABSOLUTE)
    backward = bayesian_effect(t, c, EffectKind.ABSOLUTE)
    assert forward.status is backward.status
    if forward.status is Status.OK:
        assert forward.chance_to_win is not None and forward.posterior_mean is not None
        assert backward.chance_to_win == pytest.approx(1 - forward.chance_to_win, abs=1e-12)
        assert backward.posterior_mean == close(-forward.posterior_mean)
        assert backward.risk_control == close(forward.risk_treatment)
        assert backward.risk_treatment == close(forward.risk_control)


# --- soundness of every result ------------------------------------------------------------------------------------


@FAST
@given(amounts, amounts, conversions, conversions, alphas, alternatives)
def test_mean_and_binomial_results_are_sound(
    mean_c: list[float], mean_t: list[float], conv_c: list[bool], conv_t: list[bool],
    alpha: float, alternative: Alternative,
) -> None:
    for c, t in ((SampleMoments.of(mean_c), SampleMoments.of(mean_t)), (proportion(conv_c), proportion(conv_t))):
        result = compare(c, t, alpha, alternative)
        assert_sound(result.relative)
        assert_sound(result.absolute)


@FAST
@given(ratio_users, ratio_users, covariate_users, covariate_users, alphas, alternatives)
def test_ratio_and_cuped_results_are_sound(
    ratio_c: list[tuple[float, float]], ratio_t: list[tuple[float, float]],
    cuped_c: list[tuple[float, float]], cuped_t: list[tuple[float, float]],
    alpha: float, alternative: Alternative,
) -> None:
    ratio = compare_ratio(ratio_moments(ratio_c), ratio_moments(ratio_t), alpha, alternative)
    cuped = compare_cuped(covariate_moments(cuped_c), covariate_moments(cuped_t), alpha, alternative)
    for result in (ratio, cuped.adjusted, cuped.unadjusted):
        assert_sound(result.relative)
        assert_sound(result.absolute)
    for reduction in (cuped.variance_ratio_relative, cuped.variance_ratio_absolute):
        assert reduction is None or (math.isfinite(reduction) and reduction >= 0)


@FAST
@given(amounts, amounts, alphas, st.sampled_from(list(EffectKind)))
def test_posteriors_are_sound(control: list[float], treatment: list[float], alpha: float, kind: EffectKind) -> None:
    result = bayesian_effect(SampleMoments.of(control), SampleMoments.of(treatment), kind, alpha)
    assert all(x is None or math.isfinite(x) for x in every_number(result))
    if result.status is not Status.OK:
        assert result.reason and result.chance_to_win is None
        return
    assert result.chance_to_win is not None and 0 <= result.chance_to_win <= 1
    assert result.ci_lower is not None and result.ci_upper is not None and result.posterior_mean is not None
    assert result.ci_lower <= result.posterior_mean <= result.ci_upper
    assert result.risk_control is not None and result.risk_control >= 0
    assert result.risk_treatment is not None and result.risk_treatment >= 0


# --- one-sided tests ----------------------------------------------------------------------------------------------


@FAST
@given(amounts, amounts, alphas)
def test_one_sided_p_values_split_the_two_sided_one_and_agree_with_their_bounds(
    control: list[float], treatment: list[float], alpha: float
) -> None:
    c, t = SampleMoments.of(control), SampleMoments.of(treatment)
    for difference in (absolute_difference, relative_difference):
        two = difference(c, t, alpha)
        greater = difference(c, t, alpha, Alternative.GREATER)
        less = difference(c, t, alpha, "less")
        if two.status is not Status.OK:
            assert greater.status is two.status and less.status is two.status
            continue
        assert greater.p_value is not None and less.p_value is not None and two.p_value is not None
        assert greater.p_value + less.p_value == pytest.approx(1.0, abs=1e-12)
        assert two.p_value == pytest.approx(2 * min(greater.p_value, less.p_value), rel=1e-9, abs=1e-300)
        assert greater.ci_upper is None and less.ci_lower is None
        assert greater.ci_lower is not None and less.ci_upper is not None
        # The 1 − α one-sided bound is the matching end of the two-sided 1 − 2α interval.
        wider = difference(c, t, 2 * alpha)
        assert greater.ci_lower == pytest.approx(wider.ci_lower, rel=1e-9, abs=1e-12)
        assert less.ci_upper == pytest.approx(wider.ci_upper, rel=1e-9, abs=1e-12)
        # Duality, away from the knife edge where rounding decides.
        if abs(greater.p_value - alpha) > 1e-9:
            assert (greater.p_value < alpha) == (greater.ci_lower > 0)
        if abs(less.p_value - alpha) > 1e-9:
            assert (less.p_value < alpha) == (less.ci_upper < 0)


@FAST
@given(
    st.lists(cents, min_size=3, max_size=30).filter(lambda v: len(set(v)) > 1),
    st.lists(cents, min_size=3, max_size=30).filter(lambda v: len(set(v)) > 1),
    st.sampled_from(["greater", "less"]),
)
def test_one_sided_welch_matches_scipy_on_raw_values(
    control: list[float], treatment: list[float], alternative: str
) -> None:
    ours = absolute_difference(SampleMoments.of(control), SampleMoments.of(treatment), 0.05, alternative)
    theirs = stats.ttest_ind(treatment, control, equal_var=False, alternative=alternative)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-6, abs=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-6, abs=1e-12)


@FAST
@given(
    st.integers(2, 400).flatmap(lambda n: st.tuples(st.just(n), st.sampled_from([0, n]))),
    st.integers(2, 400).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))),
    st.sampled_from([Alternative.GREATER, Alternative.LESS]),
)
def test_one_sided_tests_at_the_boundary_stay_valid(
    control: tuple[int, int], treatment: tuple[int, int], alternative: Alternative
) -> None:
    c, t = Proportion(*control), Proportion(*treatment)
    two = absolute_difference(c, t)
    one = absolute_difference(c, t, 0.05, alternative)
    other = absolute_difference(c, t, 0.05, Alternative.LESS if alternative is Alternative.GREATER else "greater")
    assert_sound(one)
    assert one.method is two.method and one.method in (Method.POOLED_Z, Method.FISHER_EXACT)
    assert one.p_value is not None and other.p_value is not None
    if one.method is Method.POOLED_Z:
        assert one.p_value + other.p_value == pytest.approx(1.0, abs=1e-12)
    else:
        # A discrete test: both tails include the observed table, so they sum to at least 1.
        assert one.p_value + other.p_value >= 1 - 1e-12
