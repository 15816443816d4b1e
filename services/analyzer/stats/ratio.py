"""Ratio metrics Σm/Σd (revenue per order, clicks per session, ...) compared by the delta method.

The unit of randomisation is the user, but the ratio's unit is the denominator (orders), so users' orders are
not independent and the naive variance of the per-order values is wrong. Per arm, with μ_m = Σm/n, μ_d = Σd/n:

    R = Σm/Σd = μ_m/μ_d
    cov = (Σm·d − Σm·Σd/n)/(n − 1)
    v_R = var_m/μ_d² − 2·cov·μ_m/μ_d³ + μ_m²·var_d/μ_d⁴        (per-user delta-method variance: Var(R) ≈ v_R/n)

(Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD; the same estimator as gbstats'
``RatioStatistic``). The arms' (n, R, v_R) are then compared exactly like means, on the relative and the absolute
scale, by ``frequentist`` (Welch's t-test, Welch–Satterthwaite ν from v_R).

An arm whose denominator sum is 0 has no ratio: both comparisons are UNDEFINED with that reason (gbstats
silently uses R = 0 there).
"""

from __future__ import annotations

from services.analyzer.stats.frequentist import (
    Alternative,
    ArmEstimate,
    compare,
    validate_alpha,
    validate_alternative,
    without_cancellation_noise,
)
from services.analyzer.stats.results import Comparison, EffectKind, Method, Status, TreatmentComparison
from splitstream.statistics import RatioMoments


def ratio_of(arm: RatioMoments) -> float:
    """R = Σm/Σd; NaN when Σd = 0."""
    return arm.numerator_sum / arm.denominator_sum if arm.denominator_sum != 0 else float("nan")


def ratio_unit_variance(arm: RatioMoments) -> float:
    """v_R of the module docstring; NaN below 2 users or when Σd = 0.

    v_R = var(m − R·d)/μ_d²: it is 0 when every user has the same ratio, and its three terms then cancel to
    rounding noise, so a result within ``frequentist.CANCELLATION_TOLERANCE`` of their size is taken as 0.
    """
    if arm.n < 2 or arm.denominator_sum == 0:
        return float("nan")
    numerator, denominator = arm.numerator(), arm.denominator()
    mean_d = denominator.mean
    ratio = numerator.mean / mean_d
    # var_m/μ_d² − 2·cov·μ_m/μ_d³ + μ_m²·var_d/μ_d⁴ = (var_m − 2·cov·R + R²·var_d)/μ_d², with R = μ_m/μ_d.
    terms = (numerator.variance, -2 * arm.covariance * ratio, ratio * ratio * denominator.variance)
    return without_cancellation_noise(terms) / (mean_d * mean_d)


def ratio_estimate(arm: RatioMoments) -> ArmEstimate:
    """(n, R, v_R) of one arm, for ``frequentist`` or ``bayesian``; call only when Σd ≠ 0."""
    return ArmEstimate(n=arm.n, mean=ratio_of(arm), variance=ratio_unit_variance(arm))


def _undefined_pair(reason: str, status: Status = Status.UNDEFINED) -> TreatmentComparison:
    return TreatmentComparison(
        relative=Comparison(EffectKind.RELATIVE, Method.WELCH_T, status, reason),
        absolute=Comparison(EffectKind.ABSOLUTE, Method.WELCH_T, status, reason),
    )


def ratio_problem(control: RatioMoments, treatment: RatioMoments) -> tuple[Status, str] | None:
    """Why the arms have no ratio to compare (no users, or a denominator sum of 0), or None when they do."""
    empty = [name for name, arm in (("control", control), ("treatment", treatment)) if arm.n == 0]
    if empty:
        return Status.INSUFFICIENT_DATA, f"{' and '.join(empty)} has no users"
    zero = [name for name, arm in (("control", control), ("treatment", treatment)) if arm.denominator_sum == 0]
    if zero:
        return Status.UNDEFINED, (
            f"the denominator sums to 0 in {' and '.join(zero)}, so the ratio Σm/Σd does not exist there"
        )
    return None


def compare_ratio(
    control: RatioMoments,
    treatment: RatioMoments,
    alpha: float = 0.05,
    alternative: Alternative | str = Alternative.TWO_SIDED,
) -> TreatmentComparison:
    """R_t/R_c − 1 and R_t − R_c by Welch's t-test on the delta-method variances (module docstring)."""
    validate_alpha(alpha)
    validate_alternative(alternative, alpha)
    if (problem := ratio_problem(control, treatment)) is not None:
        status, reason = problem
        return _undefined_pair(reason, status)
    return compare(ratio_estimate(control), ratio_estimate(treatment), alpha, alternative)
