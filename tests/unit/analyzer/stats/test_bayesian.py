"""The Gaussian posterior beyond the golden cases: its link to the frequentist estimate, the prior, the risks."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from scipy import integrate, stats

from services.analyzer.stats.bayesian import (
    BayesianEffect,
    GaussianPrior,
    bayesian_compare,
    bayesian_compare_cuped,
    bayesian_compare_ratio,
    bayesian_effect,
    summarise_posterior,
)
from services.analyzer.stats.cuped import adjusted_estimate, pooled_theta
from services.analyzer.stats.frequentist import AnyArm, compare
from services.analyzer.stats.ratio import ratio_estimate
from services.analyzer.stats.results import EffectKind, Status
from splitstream.statistics import CovariateMoments, Proportion, RatioMoments, SampleMoments

ARMS: list[tuple[AnyArm, AnyArm]] = [
    (Proportion(10_000, 1_000), Proportion(10_000, 1_080)),
    (Proportion(2_500, 400), Proportion(2_700, 390)),
    (SampleMoments(4_000, 38_000.0, 1_200_000.0), SampleMoments(4_200, 41_500.0, 1_400_000.0)),
]


def numbers(effect: BayesianEffect) -> list[float | None]:
    return [getattr(effect, f.name) for f in fields(effect) if f.name not in ("kind", "status", "reason")]


@pytest.mark.parametrize(("control", "treatment"), ARMS)
def test_flat_prior_posterior_is_the_frequentist_estimate_and_standard_error(
    control: AnyArm, treatment: AnyArm
) -> None:
    frequentist = compare(control, treatment)
    posterior = bayesian_compare(control, treatment)
    for ours, theirs in ((posterior.relative, frequentist.relative), (posterior.absolute, frequentist.absolute)):
        assert ours.status is Status.OK and theirs.effect is not None and theirs.std_error is not None
        assert ours.posterior_mean == pytest.approx(theirs.effect, rel=1e-12)
        assert ours.posterior_sd == pytest.approx(theirs.std_error, rel=1e-12)
        assert ours.chance_to_win == pytest.approx(stats.norm.cdf(theirs.effect / theirs.std_error), rel=1e-12)
        half_width = stats.norm.ppf(0.975) * theirs.std_error
        assert (ours.ci_lower, ours.ci_upper) == pytest.approx((theirs.effect - half_width, theirs.effect + half_width))


@pytest.mark.parametrize(("mean", "sd"), [(0.08, 0.045), (-0.06, 0.037), (0.0, 1.0), (2.5, 0.4), (-3.0, 0.9)])
def test_risks_are_the_expected_losses_under_the_posterior(mean: float, sd: float) -> None:
    posterior = summarise_posterior(EffectKind.RELATIVE, mean, sd, alpha=0.1)
    density = stats.norm(mean, sd).pdf
    gain, _ = integrate.quad(lambda x: x * density(x), 0, math.inf)
    loss, _ = integrate.quad(lambda x: -x * density(x), -math.inf, 0)
    assert posterior.risk_control == pytest.approx(gain, rel=1e-7, abs=1e-12)
    assert posterior.risk_treatment == pytest.approx(loss, rel=1e-7, abs=1e-12)
    # E[max(Δ, 0)] − E[max(−Δ, 0)] = E[Δ].
    assert posterior.risk_control is not None and posterior.risk_treatment is not None
    assert posterior.risk_control - posterior.risk_treatment == pytest.approx(mean, abs=1e-12)
    assert posterior.ci_lower is not None and posterior.ci_upper is not None
    coverage = stats.norm.cdf(posterior.ci_upper, mean, sd) - stats.norm.cdf(posterior.ci_lower, mean, sd)
    assert coverage == pytest.approx(0.9, rel=1e-9)


def test_proper_prior_is_combined_by_precision() -> None:
    control, treatment = Proportion(1_000, 100), Proportion(1_000, 130)
    flat = bayesian_effect(control, treatment)
    assert flat.posterior_mean is not None and flat.posterior_sd is not None
    prior = GaussianPrior(mean=0.05, sd=0.2)
    data_precision, prior_precision = flat.posterior_sd**-2, prior.sd**-2
    shrunk = bayesian_effect(control, treatment, prior=prior)
    assert shrunk.posterior_sd == pytest.approx((data_precision + prior_precision) ** -0.5, rel=1e-12)
    expected_mean = (flat.posterior_mean * data_precision + prior.mean * prior_precision) / (
        data_precision + prior_precision
    )
    assert shrunk.posterior_mean == pytest.approx(expected_mean, rel=1e-12)
    assert shrunk.posterior_mean is not None and prior.mean < shrunk.posterior_mean < flat.posterior_mean


def test_a_vague_prior_approaches_the_flat_one_and_a_sharp_prior_dominates() -> None:
    control, treatment = SampleMoments(900, 8_100.0, 150_000.0), SampleMoments(950, 9_400.0, 170_000.0)
    flat = bayesian_effect(control, treatment)
    vague = bayesian_effect(control, treatment, prior=GaussianPrior(0.0, 1e4))
    sharp = bayesian_effect(control, treatment, prior=GaussianPrior(-0.02, 1e-5))
    assert vague.posterior_mean == pytest.approx(flat.posterior_mean, rel=1e-6)
    assert vague.posterior_sd == pytest.approx(flat.posterior_sd, rel=1e-6)
    assert sharp.posterior_mean == pytest.approx(-0.02, rel=1e-3)
    assert sharp.chance_to_win is not None and sharp.chance_to_win < 1e-6


def test_a_relative_prior_is_scaled_by_the_control_mean_for_the_absolute_effect() -> None:
    control, treatment = Proportion(5_000, 600), Proportion(5_000, 660)
    base = control.mean
    relative_prior = GaussianPrior(0.02, 0.1)
    absolute_prior = GaussianPrior(0.02 * base, 0.1 * base, scale=EffectKind.ABSOLUTE)
    on_absolute = bayesian_effect(control, treatment, EffectKind.ABSOLUTE, prior=relative_prior)
    assert on_absolute == bayesian_effect(control, treatment, EffectKind.ABSOLUTE, prior=absolute_prior)
    on_relative = bayesian_effect(control, treatment, EffectKind.RELATIVE, prior=absolute_prior)
    assert on_relative.posterior_mean == pytest.approx(
        bayesian_effect(control, treatment, prior=relative_prior).posterior_mean, rel=1e-12
    )


def test_chance_to_win_does_not_round_to_zero_or_one_in_the_tails() -> None:
    """|z| ≈ 10: 1 − Φ(z) is 0 in double precision, the survival function is not."""
    control, treatment = Proportion(5_000_000, 509_500), Proportion(5_000_000, 500_000)
    losing = bayesian_effect(control, treatment, EffectKind.ABSOLUTE)
    assert losing.chance_to_win is not None and 0 < losing.chance_to_win < 1e-20
    assert losing.risk_control is not None and 0 <= losing.risk_control < 1e-20


def test_swapping_the_arms_mirrors_the_absolute_posterior() -> None:
    control, treatment = ARMS[2]
    forward = bayesian_effect(control, treatment, EffectKind.ABSOLUTE)
    backward = bayesian_effect(treatment, control, EffectKind.ABSOLUTE)
    assert forward.chance_to_win is not None
    assert backward.chance_to_win == pytest.approx(1 - forward.chance_to_win)
    assert backward.risk_control == pytest.approx(forward.risk_treatment, rel=1e-12)
    assert backward.risk_treatment == pytest.approx(forward.risk_control, rel=1e-12)


def test_ratio_and_cuped_posteriors_use_their_estimators() -> None:
    rng = np.random.default_rng(31)
    orders = [rng.poisson(1.5, 500).astype(float) for _ in range(2)]
    revenue = [o * 30 * rng.lognormal(0, 0.5, 500) for o in orders]
    control, treatment = (RatioMoments.of(list(m), list(d)) for m, d in zip(revenue, orders, strict=True))
    prior = GaussianPrior(0.0, 0.3)
    assert bayesian_compare_ratio(control, treatment, 0.1, prior) == bayesian_compare(
        ratio_estimate(control), ratio_estimate(treatment), 0.1, prior
    )
    pre = [rng.gamma(2, 10, 500) for _ in range(2)]
    post = [x * rng.lognormal(0, 0.3, 500) for x in pre]
    c, t = (CovariateMoments.of(list(y), list(x)) for y, x in zip(post, pre, strict=True))
    theta = pooled_theta(c, t)
    assert bayesian_compare_cuped(c, t) == bayesian_compare(adjusted_estimate(c, theta), adjusted_estimate(t, theta))


def test_ratio_without_denominator_has_no_posterior() -> None:
    result = bayesian_compare_ratio(RatioMoments.of([0.0, 0.0], [0.0, 0.0]), RatioMoments.of([3.0, 4.0], [1.0, 1.0]))
    for effect in (result.relative, result.absolute):
        assert effect.status is Status.UNDEFINED and effect.reason and "denominator" in effect.reason


def test_zero_control_mean_has_an_absolute_posterior_but_no_lift() -> None:
    control = SampleMoments(300, 0.0, 0.0)
    treatment = SampleMoments.of([0.0] * 250 + [12.0, 30.0] * 25)
    result = bayesian_compare(control, treatment)
    assert result.relative.status is Status.UNDEFINED and result.relative.reason
    assert "control mean" in result.relative.reason and result.relative.chance_to_win is None
    assert result.absolute.status is Status.OK
    with_prior = bayesian_effect(control, treatment, EffectKind.ABSOLUTE, prior=GaussianPrior(0.0, 0.3))
    assert with_prior.status is Status.UNDEFINED
    assert with_prior.reason and "prior" in with_prior.reason


@pytest.mark.parametrize(
    ("control", "treatment", "status", "phrase"),
    [
        (Proportion(1, 0), Proportion(100, 10), Status.INSUFFICIENT_DATA, "at least 2 users"),
        (Proportion(0, 0), Proportion(0, 0), Status.INSUFFICIENT_DATA, "at least 2 users"),
        (SampleMoments(50, 100.0, 200.0), SampleMoments(50, 150.0, 450.0), Status.UNDEFINED, "zero variance"),
        (Proportion(400, 300), Proportion(400, 400), Status.UNDEFINED, "0% or 100%"),
        (Proportion(40, 6), Proportion(40, 0), Status.UNDEFINED, "0% or 100%"),
        (SampleMoments(10, 1e200, 1e300), SampleMoments(10, 1e200, 1.7e308), Status.UNDEFINED, "overflow"),
    ],
)
def test_degenerate_data_has_a_status_and_a_reason_not_a_posterior(
    control: AnyArm, treatment: AnyArm, status: Status, phrase: str
) -> None:
    for kind in EffectKind:
        result = bayesian_effect(control, treatment, kind)
        assert result.status is status
        assert result.reason and phrase in result.reason
        assert result.chance_to_win is None and result.risk_control is None
        assert all(x is None or math.isfinite(x) for x in numbers(result))


@pytest.mark.parametrize(("mean", "sd"), [(0.0, 0.0), (0.0, -1.0), (math.nan, 0.3), (0.0, math.inf)])
def test_an_improper_prior_specification_is_rejected(mean: float, sd: float) -> None:
    with pytest.raises(ValueError, match="prior"):
        GaussianPrior(mean, sd)


def test_invalid_alpha_is_rejected() -> None:
    with pytest.raises(ValueError, match="alpha"):
        bayesian_compare(Proportion(100, 10), Proportion(100, 12), alpha=1.5)
