"""Fixed-horizon frequentist comparison of a treatment against the control, from sufficient statistics.

Per arm: n users, mean m and unit variance v (binomial p(1 − p); mean (Σy² − (Σy)²/n)/(n − 1)), as
``splitstream.statistics`` defines them, or an ``ArmEstimate`` that another estimator (ratio, CUPED) derived.
Both scales use Welch's t-test, as gbstats' ``TwoSidedTTest`` does:

- absolute: Δ = m_t − m_c,          Var(Δ) = v_t/n_t + v_c/n_c
- relative: Δ = (m_t − m_c)/b_c,    Var(Δ) = v_t/(n_t·b_c²) + v_c·b_t²/(n_c·b_c⁴)   (delta method)

where b is the arm's unadjusted mean: b = m, except for CUPED, whose relative lift is taken over the unadjusted
control mean (so Δ = m_t/m_c − 1 for every other metric).

t = Δ/√Var(Δ). Two-sided: p = 2·T_ν.sf(|t|) (the survival function, so tiny p-values do not round to 0) and
CI = Δ ± T_ν.isf(α/2)·√Var(Δ). One-sided (``alternative``): "greater" tests H1: Δ > 0 with p = T_ν.sf(t) and the
1 − α bound [Δ − T_ν.isf(α)·√Var(Δ), +∞); "less" tests H1: Δ < 0 with p = T_ν.sf(−t) and (−∞, Δ + T_ν.isf(α)·√Var(Δ)].
The infinite bound is reported as ``None`` and the ``reason`` says so. The degrees of freedom ν are the
Welch–Satterthwaite value of the UNSCALED per-arm variances of the means, for both scales (this is what reproduces
gbstats' relative results: its relative test does not recompute ν from the delta-method terms):

    ν = (v_c/n_c + v_t/n_t)² / ((v_c/n_c)²/(n_c − 1) + (v_t/n_t)²/(n_t − 1))

Degenerate data gives a result whose ``status``/``reason`` explain the missing numbers, never an exception and
never a made-up p = 1. Arguments that cannot be right (α outside (0, 1), arms of different kinds, an unknown
alternative) raise ValueError.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from scipy import special, stats

from services.analyzer.stats.proportions import boundary_difference, is_at_boundary, newcombe_interval, pooled_z_test
from services.analyzer.stats.results import Comparison, EffectKind, Method, Status, TreatmentComparison
from splitstream.statistics import Proportion, SampleMoments

MIN_USERS_PER_ARM = 2


class Alternative(StrEnum):
    """The alternative hypothesis about the effect Δ of the treatment."""

    TWO_SIDED = "two-sided"
    """H1: Δ ≠ 0."""
    GREATER = "greater"
    """H1: Δ > 0 (the treatment raises the metric)."""
    LESS = "less"
    """H1: Δ < 0 (the treatment lowers the metric)."""


@dataclass(frozen=True, slots=True)
class ArmEstimate:
    """One arm's estimate of a mean-like quantity with its per-unit variance, whatever the metric behind it.

    ``mean`` is the estimate compared between arms (a ratio Σm/Σd, a CUPED-adjusted mean, ...); ``variance`` its
    per-unit variance, so that Var(mean) = variance/n (NaN below 2 users); ``unadjusted_mean`` the mean a relative
    lift is taken over, when it differs from ``mean`` (CUPED).
    """

    n: int
    mean: float
    variance: float
    unadjusted_mean: float | None = None

    def __post_init__(self) -> None:
        if self.n < 0 or self.variance < 0:  # NaN passes: it means "too few users for a variance"
            raise ValueError("n and variance must be non-negative")

    @property
    def baseline(self) -> float:
        return self.mean if self.unadjusted_mean is None else self.unadjusted_mean


Arm = Proportion | SampleMoments
"""A metric's sufficient statistic in one arm."""
AnyArm = Proportion | SampleMoments | ArmEstimate
"""What the comparisons accept: a sufficient statistic, or an estimate derived from one (ratio, CUPED)."""


@dataclass(frozen=True, slots=True)
class EffectEstimate:
    """Δ on one scale with Var(Δ) and the Welch ν, or the status and reason why they cannot be had.

    ``at_boundary``: a binomial arm converted at 0% or 100%, where the normal approximation's variance is not valid.
    """

    kind: EffectKind
    status: Status
    reason: str | None
    effect: float | None = None
    variance: float | None = None
    dof: float | None = None
    at_boundary: bool = False


CANCELLATION_TOLERANCE = 1e-10
"""A sum of variance terms smaller than this fraction of the terms' magnitudes is rounding noise around 0."""


def without_cancellation_noise(terms: tuple[float, ...]) -> float:
    """Σ terms, or 0 when the sum is below ``CANCELLATION_TOLERANCE`` of Σ|terms| (a variance cancelled to 0)."""
    total = sum(terms)
    if not math.isfinite(total):
        return total  # overflow stays visible, for the callers to report
    return total if total > CANCELLATION_TOLERANCE * sum(abs(term) for term in terms) else 0.0


def validate_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:  # also rejects NaN
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def validate_alternative(alternative: Alternative | str, alpha: float) -> Alternative:
    """The alternative as an ``Alternative``; a one-sided 1 − α bound lies on the right side of Δ only if α < 0.5."""
    try:
        chosen = Alternative(alternative)
    except ValueError:
        raise ValueError(
            f"alternative must be one of {', '.join(a.value for a in Alternative)}, got {alternative!r}"
        ) from None
    if chosen is not Alternative.TWO_SIDED and not alpha < 0.5:
        raise ValueError(f"a one-sided test needs alpha < 0.5, got {alpha!r}")
    return chosen


def _check_arms(control: AnyArm, treatment: AnyArm) -> None:
    if type(control) is not type(treatment):
        raise ValueError(
            f"control and treatment must be the same kind of statistic, got "
            f"{type(control).__name__} and {type(treatment).__name__}"
        )


def baseline_of(arm: AnyArm) -> float:
    """The mean a relative lift is taken over: the unadjusted mean (the mean itself except for CUPED)."""
    return arm.baseline if isinstance(arm, ArmEstimate) else arm.mean


def welch_dof(control: AnyArm, treatment: AnyArm) -> float:
    """Welch–Satterthwaite ν of the two means (formula in the module docstring); needs n ≥ 2 and some variance."""
    share_c = control.variance / control.n
    share_t = treatment.variance / treatment.n
    # Products, not **: float ** raises OverflowError where * gives inf, which the callers turn into a status.
    total = share_c + share_t
    denominator = share_c * share_c / (control.n - 1) + share_t * share_t / (treatment.n - 1)
    if denominator == 0:
        # Shares below ~1e-154 (subnormal variances) square to 0 although some variance exists; ν is scale-free,
        # so exact rationals recover it without changing the float path of every ordinary comparison.
        exact_c = Fraction(control.variance) / Fraction(control.n)
        exact_t = Fraction(treatment.variance) / Fraction(treatment.n)
        exact_total = exact_c + exact_t
        return float(exact_total * exact_total
                     / (exact_c * exact_c / (control.n - 1) + exact_t * exact_t / (treatment.n - 1)))
    return total * total / denominator


def _too_few_users(control: AnyArm, treatment: AnyArm) -> str | None:
    short = [f"{name} has {arm.n}" for name, arm in (("control", control), ("treatment", treatment))
             if arm.n < MIN_USERS_PER_ARM]
    if not short:
        return None
    return f"{' and '.join(short)} user(s); a variance needs at least {MIN_USERS_PER_ARM} users per arm"


def _overflowed(control: AnyArm, treatment: AnyArm) -> str | None:
    """Σy² near the float limit makes (Σy)² and the variance inf or NaN; say so rather than report garbage."""
    for name, arm in (("control", control), ("treatment", treatment)):
        if isinstance(arm, SampleMoments):
            numbers = (arm.sum, arm.sum_squares, arm.sum * arm.sum)
        elif isinstance(arm, ArmEstimate):
            numbers = (arm.mean, arm.variance, arm.baseline)
        else:
            continue
        if not all(math.isfinite(x) for x in numbers):
            return f"the {name} statistics overflow floating point"
    return None


def boundary_arms(control: AnyArm, treatment: AnyArm) -> list[str]:
    """'control'/'treatment' for each binomial arm that converted at 0% or 100%."""
    return [name for name, arm in (("control", control), ("treatment", treatment))
            if isinstance(arm, Proportion) and is_at_boundary(arm)]


_NO_VARIANCE = "both arms have zero variance (every user has the same value), so there is no noise to test against"


def estimate_effect(control: AnyArm, treatment: AnyArm, kind: EffectKind) -> EffectEstimate:
    """Δ, Var(Δ) and ν on the scale ``kind`` (formulas in the module docstring), or why they do not exist."""
    _check_arms(control, treatment)
    if control.n == 0 or treatment.n == 0:
        return EffectEstimate(kind, Status.INSUFFICIENT_DATA, _too_few_users(control, treatment))
    m_c, m_t = control.mean, treatment.mean
    b_c, b_t = baseline_of(control), baseline_of(treatment)
    if kind is EffectKind.ABSOLUTE:
        effect: float | None = m_t - m_c
    else:
        effect = (m_t - m_c) / b_c if b_c > 0 else None
    if (reason := _too_few_users(control, treatment)) is not None:
        return EffectEstimate(kind, Status.INSUFFICIENT_DATA, reason, effect=effect)
    if (reason := _overflowed(control, treatment)) is not None:
        return EffectEstimate(kind, Status.UNDEFINED, reason)
    if effect is None:
        return EffectEstimate(
            kind, Status.UNDEFINED,
            f"the relative lift needs a positive control mean and the control mean is {b_c:g}; "
            "see the absolute difference",
        )
    if at_boundary := boundary_arms(control, treatment):
        return EffectEstimate(
            kind, Status.UNDEFINED,
            f"{' and '.join(at_boundary)} converted at 0% or 100%, where the normal approximation's variance "
            "is not valid; see the absolute difference for a test that is",
            effect=effect, at_boundary=True,
        )
    v_c, v_t = control.variance, treatment.variance
    if v_c == 0 and v_t == 0:
        return EffectEstimate(kind, Status.UNDEFINED, _NO_VARIANCE, effect=effect)
    if kind is EffectKind.ABSOLUTE:
        variance = v_c / control.n + v_t / treatment.n
    else:
        # v_t/(n_t·b_c²) + v_c·b_t²/(n_c·b_c⁴), arranged so that large means overflow to inf rather than raise.
        scale = b_t / b_c
        squared_baseline = b_c * b_c
        if squared_baseline == 0:
            return EffectEstimate(
                kind, Status.UNDEFINED,
                f"the control mean {b_c:g} is so close to 0 that its square underflows; see the absolute difference",
                effect=effect,
            )
        variance = (v_t / treatment.n + v_c * scale * scale / control.n) / squared_baseline
    if variance == 0:
        # Relative: a treatment constant at 0 (b_t = 0, v_t = 0) zeroes both delta-method terms; else underflow.
        return EffectEstimate(
            kind, Status.UNDEFINED,
            "the variance of the effect is 0 (for a lift: the treatment is constant at 0, which zeroes the "
            "delta-method variance), so there is no noise to test against; see the absolute difference",
            effect=effect,
        )
    return EffectEstimate(kind, Status.OK, None, effect=effect, variance=variance,
                          dof=welch_dof(control, treatment))


def _one_sided_reason(alternative: Alternative) -> str | None:
    if alternative is Alternative.GREATER:
        return "one-sided test of H1: treatment > control; the interval's upper bound is +∞ (reported as None)"
    if alternative is Alternative.LESS:
        return "one-sided test of H1: treatment < control; the interval's lower bound is −∞ (reported as None)"
    return None


def _t_sf(x: float, dof: float) -> float:
    """Student t survival function, P(T_ν > x), exactly what ``scipy.stats.t.sf`` computes (it calls the same
    ``stdtr``), without the distribution object's per-call overhead (~25 µs, most of a readout's time)."""
    return float(special.stdtr(dof, -x))


def _t_isf(q: float, dof: float) -> float:
    """The x with P(T_ν > x) = q, as ``scipy.stats.t.isf``."""
    return float(-special.stdtrit(dof, q))


def welch_test(
    kind: EffectKind,
    effect: float,
    variance: float,
    dof: float,
    alpha: float,
    alternative: Alternative = Alternative.TWO_SIDED,
) -> Comparison:
    """Welch's t-test and interval of Δ with Var(Δ) and ν (formulas in the module docstring)."""
    std_error = math.sqrt(variance)
    if not all(math.isfinite(x) for x in (effect, std_error, dof)):
        return Comparison(kind, Method.WELCH_T, Status.UNDEFINED, "the statistics overflow floating point",
                          effect=effect if math.isfinite(effect) else None)
    if std_error == 0:
        return Comparison(kind, Method.WELCH_T, Status.UNDEFINED, "the effect has no variance to test against",
                          effect=effect)
    t = effect / std_error
    if not math.isfinite(t):
        return Comparison(kind, Method.WELCH_T, Status.UNDEFINED, "the t statistic overflows floating point",
                          effect=effect)
    lower: float | None
    upper: float | None
    if alternative is Alternative.TWO_SIDED:
        quantile = _t_isf(alpha / 2, dof)
        lower, upper = effect - quantile * std_error, effect + quantile * std_error
        p_value = 2 * _t_sf(abs(t), dof)
    else:
        quantile = _t_isf(alpha, dof)
        if alternative is Alternative.GREATER:
            lower, upper, p_value = effect - quantile * std_error, None, _t_sf(t, dof)
        else:
            lower, upper, p_value = None, effect + quantile * std_error, _t_sf(-t, dof)
    return Comparison(
        kind=kind,
        method=Method.WELCH_T,
        status=Status.OK,
        reason=_one_sided_reason(alternative),
        effect=effect,
        ci_lower=lower,
        ci_upper=upper,
        p_value=min(p_value, 1.0),
        std_error=std_error,
        statistic=t,
        dof=dof,
    )


def _comparison_of(estimate: EffectEstimate, alpha: float, alternative: Alternative) -> Comparison:
    if estimate.status is not Status.OK:
        return Comparison(estimate.kind, Method.WELCH_T, estimate.status, estimate.reason, effect=estimate.effect)
    assert estimate.effect is not None and estimate.variance is not None and estimate.dof is not None
    return welch_test(estimate.kind, estimate.effect, estimate.variance, estimate.dof, alpha, alternative)


def _one_sided_boundary(
    control: Proportion, treatment: Proportion, alpha: float, alternative: Alternative
) -> Comparison:
    """The boundary test of ``proportions`` made one-sided: Newcombe's interval at 1 − 2α gives the 1 − α bound;
    the pooled z-test's p is Φ̄(±z); Fisher's exact test is run with the same alternative."""
    two_sided = boundary_difference(control, treatment, alpha)
    if alternative is Alternative.TWO_SIDED:
        return two_sided
    low, high = newcombe_interval(control, treatment, 2 * alpha)
    sign = 1.0 if alternative is Alternative.GREATER else -1.0
    if two_sided.method is Method.POOLED_Z:
        z, _, _ = pooled_z_test(control, treatment)
        p_value = float(stats.norm.sf(sign * z))
    else:
        table = [
            [treatment.conversions, treatment.n - treatment.conversions],
            [control.conversions, control.n - control.conversions],
        ]
        p_value = float(stats.fisher_exact(table, alternative=alternative.value).pvalue)
    return dataclasses.replace(
        two_sided,
        reason=f"{two_sided.reason}; {_one_sided_reason(alternative)}",
        ci_lower=low if alternative is Alternative.GREATER else None,
        ci_upper=high if alternative is Alternative.LESS else None,
        p_value=min(p_value, 1.0),
    )


def absolute_difference(
    control: AnyArm, treatment: AnyArm, alpha: float = 0.05, alternative: Alternative | str = Alternative.TWO_SIDED
) -> Comparison:
    """Δ = m_t − m_c by Welch's t-test; for a binomial arm at 0% or 100%, a pooled z or Fisher's exact test."""
    validate_alpha(alpha)
    chosen = validate_alternative(alternative, alpha)
    estimate = estimate_effect(control, treatment, EffectKind.ABSOLUTE)
    if estimate.at_boundary and isinstance(control, Proportion) and isinstance(treatment, Proportion):
        return _one_sided_boundary(control, treatment, alpha, chosen)
    return _comparison_of(estimate, alpha, chosen)


def relative_difference(
    control: AnyArm, treatment: AnyArm, alpha: float = 0.05, alternative: Alternative | str = Alternative.TWO_SIDED
) -> Comparison:
    """Δ = m_t/m_c − 1 by Welch's t-test on the delta-method variance; undefined unless m_c > 0."""
    validate_alpha(alpha)
    chosen = validate_alternative(alternative, alpha)
    return _comparison_of(estimate_effect(control, treatment, EffectKind.RELATIVE), alpha, chosen)


def compare(
    control: AnyArm, treatment: AnyArm, alpha: float = 0.05, alternative: Alternative | str = Alternative.TWO_SIDED
) -> TreatmentComparison:
    """The treatment against the control on both scales."""
    return TreatmentComparison(
        relative=relative_difference(control, treatment, alpha, alternative),
        absolute=absolute_difference(control, treatment, alpha, alternative),
    )


def compare_to_control(
    arms: Sequence[AnyArm], alpha: float = 0.05, alternative: Alternative | str = Alternative.TWO_SIDED
) -> list[TreatmentComparison]:
    """Each of ``arms[1:]`` against ``arms[0]`` (the control), each at level α with no multiplicity correction."""
    if len(arms) < 2:
        raise ValueError("need the control and at least one treatment")
    control = arms[0]
    return [compare(control, treatment, alpha, alternative) for treatment in arms[1:]]
