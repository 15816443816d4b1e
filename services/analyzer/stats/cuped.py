"""CUPED: variance reduction with the same metric's pre-exposure value as a covariate.

Deng, Xu, Kohavi & Walker (2013), "Improving the Sensitivity of Online Controlled Experiments by Utilizing
Pre-Experiment Data", WSDM. Per user, y is the metric after exposure and x the same metric before it; x cannot
be moved by the treatment, so subtracting θ·x̄ leaves the effect unbiased while removing the part of y's noise
that x predicts. The conventions are gbstats' ``RegressionAdjustedStatistic`` (reference README):

    θ = cov(y, x)/var(x)            from BOTH arms' sums pooled (one θ for the experiment); θ = 0 if var(x) = 0
                                    (nothing to adjust with) or var(y) = 0
    adjusted mean   ŷ = ȳ − θ·x̄
    adjusted unit variance   v = var_y + θ²·var_x − 2θ·cov_xy     (per arm; rounding noise around 0 is taken as 0)

Absolute effect ŷ_t − ŷ_c with Var = v_t/n_t + v_c/n_c. Relative effect (ŷ_t − ŷ_c)/ȳ_c, over the UNADJUSTED
control mean, with Var = v_t/(n_t·ȳ_c²) + v_c·ȳ_t²/(n_c·ȳ_c⁴) (the means' delta-method formula with the unadjusted
means, as gbstats has it). Both use Welch's t-test with ν from the adjusted unit variances (``frequentist``).

The result also carries the unadjusted comparison (y alone) and how much CUPED shrank the variance of each
effect: ratio = Var_adjusted(Δ)/Var_unadjusted(Δ) and reduction = 1 − ratio (0.4 = 40% less variance, or the
same power with 40% fewer users). The pooled θ minimises the pooled variance, not each arm's, so on small or
weakly correlated samples the reduction can come out slightly negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.analyzer.stats.frequentist import (
    Alternative,
    ArmEstimate,
    compare,
    validate_alpha,
    validate_alternative,
    without_cancellation_noise,
)
from services.analyzer.stats.results import Comparison, Status, TreatmentComparison
from splitstream.statistics import CovariateMoments


@dataclass(frozen=True, slots=True)
class CupedComparison:
    """The CUPED-adjusted comparison, the unadjusted one for reference, θ and the variance reduction achieved.

    ``variance_ratio_*`` is Var_adjusted(Δ)/Var_unadjusted(Δ) of the relative or absolute effect and
    ``variance_reduction_*`` is 1 minus it; each is None when either comparison has no variance.
    """

    theta: float
    adjusted: TreatmentComparison
    unadjusted: TreatmentComparison
    variance_ratio_relative: float | None
    variance_ratio_absolute: float | None
    variance_reduction_relative: float | None
    variance_reduction_absolute: float | None


def pooled_theta(control: CovariateMoments, treatment: CovariateMoments) -> float:
    """θ = cov(y, x)/var(x) from the two arms' sums added together; 0 when either variance is 0 or undefined."""
    pooled = control + treatment
    variance_x, variance_y = pooled.covariate().variance, pooled.outcome().variance
    if not (variance_x > 0 and variance_y > 0):  # also catches NaN (fewer than 2 users)
        return 0.0
    theta = pooled.covariance / variance_x
    return theta if math.isfinite(theta) else 0.0


def adjusted_estimate(arm: CovariateMoments, theta: float) -> ArmEstimate:
    """(n, ŷ = ȳ − θ·x̄, v = var_y + θ²·var_x − 2θ·cov_xy) with ȳ as the base of a relative lift."""
    outcome, covariate = arm.outcome(), arm.covariate()
    if arm.n < 2:
        variance = float("nan")
    elif theta == 0:
        variance = outcome.variance  # exactly the unadjusted comparison, even where var_x or cov are rounding noise
    else:
        # var(y − θ·x): 0 when y = a + θ·x exactly, where the terms cancel to rounding noise.
        terms = (outcome.variance, theta * theta * covariate.variance, -2 * theta * arm.covariance)
        variance = without_cancellation_noise(terms)
    mean = outcome.mean - theta * covariate.mean if theta != 0 else outcome.mean
    return ArmEstimate(n=arm.n, mean=mean, variance=variance, unadjusted_mean=outcome.mean)


def _variance_ratio(adjusted: Comparison, unadjusted: Comparison) -> float | None:
    if adjusted.status is not Status.OK or unadjusted.status is not Status.OK:
        return None
    if adjusted.std_error is None or not unadjusted.std_error:
        return None
    ratio = (adjusted.std_error / unadjusted.std_error) ** 2
    return ratio if math.isfinite(ratio) else None


def compare_cuped(
    control: CovariateMoments,
    treatment: CovariateMoments,
    alpha: float = 0.05,
    alternative: Alternative | str = Alternative.TWO_SIDED,
) -> CupedComparison:
    """The CUPED-adjusted and the unadjusted comparison on both scales (conventions in the module docstring)."""
    validate_alpha(alpha)
    validate_alternative(alternative, alpha)
    theta = pooled_theta(control, treatment)
    adjusted = compare(adjusted_estimate(control, theta), adjusted_estimate(treatment, theta), alpha, alternative)
    unadjusted = compare(control.outcome(), treatment.outcome(), alpha, alternative)
    ratio_relative = _variance_ratio(adjusted.relative, unadjusted.relative)
    ratio_absolute = _variance_ratio(adjusted.absolute, unadjusted.absolute)
    return CupedComparison(
        theta=theta,
        adjusted=adjusted,
        unadjusted=unadjusted,
        variance_ratio_relative=ratio_relative,
        variance_ratio_absolute=ratio_absolute,
        variance_reduction_relative=None if ratio_relative is None else 1 - ratio_relative,
        variance_reduction_absolute=None if ratio_absolute is None else 1 - ratio_absolute,
    )
