"""Bayesian read-out of an effect: a Gaussian posterior, the chance to win, a credible interval and the risks.

The likelihood is the normal approximation the frequentist tests use: the effect estimate Δ̂ (relative or
absolute) with its delta-method variance s² (``frequentist.estimate_effect``), so Δ̂ | Δ ~ N(Δ, s²). This is
gbstats' ``EffectBayesianABTest``.

Prior: flat by default (improper), so the posterior is N(Δ̂, s²). A proper prior N(μ₀, τ²) is stated on the
RELATIVE effect (or, if asked, on the absolute one); for the absolute effect it is put on that scale with the
control's (unadjusted) mean b_c, as N(μ₀·|b_c|, τ²·b_c²), and vice versa.
The posterior is the precision-weighted combination (conjugate normal–normal):

    precision = 1/s² + 1/τ²,    mean = (Δ̂/s² + μ₀/τ²)/precision,    sd = 1/√precision

From the posterior N(μ, σ²), with z = μ/σ, φ and Φ the standard normal pdf and cdf:

    chance_to_win  = P(Δ > 0) = Φ(z)
    credible interval (1 − α) = μ ± Φ⁻¹(1 − α/2)·σ
    risk_control   = E[max(Δ, 0)]  = σ·(φ(z) + z·Φ(z))    expected loss of keeping the control (if it is worse)
    risk_treatment = E[max(−Δ, 0)] = σ·(φ(z) − z·Φ(−z))   expected loss of shipping the treatment (if it is worse)

Degenerate data (fewer than 2 users, a control mean that is not positive for a lift, no variance, a binomial
arm at 0% or 100% where the Gaussian variance p(1 − p) = 0 claims a certainty the data do not have) gives a
result whose ``status``/``reason`` say why there is no posterior, never an exception and never a made-up 50%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from services.analyzer.stats.cuped import adjusted_estimate, pooled_theta
from services.analyzer.stats.frequentist import AnyArm, baseline_of, boundary_arms, estimate_effect, validate_alpha
from services.analyzer.stats.ratio import ratio_estimate, ratio_problem
from services.analyzer.stats.results import EffectKind, Status
from splitstream.statistics import CovariateMoments, RatioMoments


@dataclass(frozen=True, slots=True)
class GaussianPrior:
    """A proper normal prior N(mean, sd²) on the effect, stated on the relative scale unless ``scale`` says otherwise.

    GrowthBook's app uses N(0, 0.3²) on the relative effect when a proper prior is enabled.
    """

    mean: float = 0.0
    sd: float = 0.3
    scale: EffectKind = EffectKind.RELATIVE

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean) or not (0 < self.sd < math.inf):
            raise ValueError(f"a proper prior needs a finite mean and 0 < sd < ∞, got N({self.mean!r}, {self.sd!r}²)")


@dataclass(frozen=True, slots=True)
class BayesianEffect:
    """The posterior of one effect (relative or absolute) and what it implies; numbers are None unless status OK."""

    kind: EffectKind
    status: Status
    reason: str | None
    posterior_mean: float | None = None
    posterior_sd: float | None = None
    chance_to_win: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    risk_control: float | None = None
    risk_treatment: float | None = None


@dataclass(frozen=True, slots=True)
class BayesianComparison:
    relative: BayesianEffect
    absolute: BayesianEffect


def summarise_posterior(
    kind: EffectKind, mean: float, sd: float, alpha: float, reason: str | None = None
) -> BayesianEffect:
    """Chance to win, credible interval and risks of the posterior N(mean, sd²) (formulas in the module docstring)."""
    validate_alpha(alpha)
    if not sd > 0:
        raise ValueError(f"a posterior needs sd > 0, got {sd!r}")
    z = mean / sd
    density = float(stats.norm.pdf(z))
    below, above = float(stats.norm.cdf(z)), float(stats.norm.sf(z))  # Φ(z), Φ(−z) without 1 − x cancellation
    quantile = float(stats.norm.isf(alpha / 2))
    result = BayesianEffect(
        kind=kind,
        status=Status.OK,
        reason=reason,
        posterior_mean=mean,
        posterior_sd=sd,
        chance_to_win=below,
        ci_lower=mean - quantile * sd,
        ci_upper=mean + quantile * sd,
        risk_control=max(0.0, sd * (density + z * below)),
        risk_treatment=max(0.0, sd * (density - z * above)),
    )
    numbers = (z, result.ci_lower, result.ci_upper, result.risk_control, result.risk_treatment)
    if not all(x is not None and math.isfinite(x) for x in numbers):
        return BayesianEffect(kind, Status.UNDEFINED, "the posterior overflows floating point")
    return result


def _prior_on_scale(prior: GaussianPrior, kind: EffectKind, control: AnyArm) -> tuple[float, float] | str:
    """(μ₀, τ) on the effect's scale, or why the prior cannot be moved there.

    A relative prior N(μ₀, τ²) is N(μ₀·|b_c|, τ²·b_c²) on the absolute scale, and an absolute one N(μ₀/|b_c|, τ²/b_c²)
    on the relative scale, b_c being the control's unadjusted mean (gbstats' convention).
    """
    if prior.scale is kind:
        return prior.mean, prior.sd
    base = abs(baseline_of(control))
    if not (base > 0 and math.isfinite(base)):
        return (f"the prior is stated on the {prior.scale.value} effect and the control mean is "
                f"{baseline_of(control):g}, so it has no {kind.value}-scale equivalent")
    if kind is EffectKind.ABSOLUTE:
        return prior.mean * base, prior.sd * base
    return prior.mean / base, prior.sd / base


def bayesian_effect(
    control: AnyArm,
    treatment: AnyArm,
    kind: EffectKind = EffectKind.RELATIVE,
    alpha: float = 0.05,
    prior: GaussianPrior | None = None,
) -> BayesianEffect:
    """The posterior of the treatment's effect on the scale ``kind``; flat prior unless ``prior`` is given."""
    validate_alpha(alpha)
    estimate = estimate_effect(control, treatment, kind)
    if estimate.status is not Status.OK:
        reason = estimate.reason
        if estimate.at_boundary:
            reason = (f"{' and '.join(boundary_arms(control, treatment))} converted at 0% or 100%, where the "
                      "Gaussian variance p(1 − p) is 0 and the posterior would claim a certainty the data do not "
                      "have; see the frequentist absolute difference for a test valid there")
        return BayesianEffect(kind, estimate.status, reason)
    assert estimate.effect is not None and estimate.variance is not None
    data_mean, data_variance = estimate.effect, estimate.variance
    if not (math.isfinite(data_mean) and 0 < data_variance < math.inf):
        return BayesianEffect(kind, Status.UNDEFINED, "the statistics overflow floating point")
    if prior is None:
        return summarise_posterior(kind, data_mean, math.sqrt(data_variance), alpha)
    scaled = _prior_on_scale(prior, kind, control)
    if isinstance(scaled, str):
        return BayesianEffect(kind, Status.UNDEFINED, scaled)
    prior_mean, prior_sd = scaled
    prior_precision = 1 / (prior_sd * prior_sd)
    precision = 1 / data_variance + prior_precision
    posterior_mean = (data_mean / data_variance + prior_mean * prior_precision) / precision
    return summarise_posterior(kind, posterior_mean, 1 / math.sqrt(precision), alpha)


def bayesian_compare(
    control: AnyArm, treatment: AnyArm, alpha: float = 0.05, prior: GaussianPrior | None = None
) -> BayesianComparison:
    """The posterior of the relative and of the absolute effect."""
    return BayesianComparison(
        relative=bayesian_effect(control, treatment, EffectKind.RELATIVE, alpha, prior),
        absolute=bayesian_effect(control, treatment, EffectKind.ABSOLUTE, alpha, prior),
    )


def bayesian_compare_ratio(
    control: RatioMoments, treatment: RatioMoments, alpha: float = 0.05, prior: GaussianPrior | None = None
) -> BayesianComparison:
    """``bayesian_compare`` of two ratio metrics Σm/Σd with their delta-method variances (``ratio``)."""
    validate_alpha(alpha)
    if (problem := ratio_problem(control, treatment)) is not None:
        status, reason = problem
        return BayesianComparison(
            relative=BayesianEffect(EffectKind.RELATIVE, status, reason),
            absolute=BayesianEffect(EffectKind.ABSOLUTE, status, reason),
        )
    return bayesian_compare(ratio_estimate(control), ratio_estimate(treatment), alpha, prior)


def bayesian_compare_cuped(
    control: CovariateMoments, treatment: CovariateMoments, alpha: float = 0.05, prior: GaussianPrior | None = None
) -> BayesianComparison:
    """``bayesian_compare`` of CUPED-adjusted means with the pooled θ (``cuped``)."""
    theta = pooled_theta(control, treatment)
    return bayesian_compare(adjusted_estimate(control, theta), adjusted_estimate(treatment, theta), alpha, prior)
