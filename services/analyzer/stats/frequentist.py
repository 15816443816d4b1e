"""Fixed-horizon frequentist comparison of a treatment against the control, from sufficient statistics.

Per arm: n users, mean m and unit variance v (binomial p(1 − p); mean (Σy² − (Σy)²/n)/(n − 1)), as
``splitstream.statistics`` defines them. Both scales use Welch's t-test, as gbstats' ``TwoSidedTTest`` does:

- absolute: Δ = m_t − m_c,        Var(Δ) = v_t/n_t + v_c/n_c
- relative: Δ = m_t/m_c − 1,      Var(Δ) = v_t/(n_t·m_c²) + v_c·m_t²/(n_c·m_c⁴)   (delta method)

t = Δ/√Var(Δ); two-sided p = 2·T_ν.sf(|t|) (the survival function, so tiny p-values do not round to 0);
CI = Δ ± T_ν.isf(α/2)·√Var(Δ). The degrees of freedom ν are the Welch–Satterthwaite value of the UNSCALED
per-arm variances of the means, for both scales (this is what reproduces gbstats' relative results: its relative
test does not recompute ν from the delta-method terms):

    ν = (v_c/n_c + v_t/n_t)² / ((v_c/n_c)²/(n_c − 1) + (v_t/n_t)²/(n_t − 1))

Degenerate data gives a result whose ``status``/``reason`` explain the missing numbers, never an exception and
never a made-up p = 1. Arguments that cannot be right (α outside (0, 1), arms of different kinds) raise ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats

from services.analyzer.stats.proportions import boundary_difference, is_at_boundary
from services.analyzer.stats.results import Comparison, EffectKind, Method, Status, TreatmentComparison
from splitstream.statistics import Proportion, SampleMoments

Arm = Proportion | SampleMoments
MIN_USERS_PER_ARM = 2


def validate_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:  # also rejects NaN
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _check_arms(control: Arm, treatment: Arm) -> None:
    if type(control) is not type(treatment):
        raise ValueError(
            f"control and treatment must be the same kind of statistic, got "
            f"{type(control).__name__} and {type(treatment).__name__}"
        )


def welch_dof(control: Arm, treatment: Arm) -> float:
    """Welch–Satterthwaite ν of the two means (formula in the module docstring); needs n ≥ 2 and some variance."""
    share_c = control.variance / control.n
    share_t = treatment.variance / treatment.n
    # Products, not **: float ** raises OverflowError where * gives inf, which the callers turn into a status.
    total = share_c + share_t
    return total * total / (share_c * share_c / (control.n - 1) + share_t * share_t / (treatment.n - 1))


def _too_few_users(control: Arm, treatment: Arm) -> str | None:
    short = [f"{name} has {arm.n}" for name, arm in (("control", control), ("treatment", treatment))
             if arm.n < MIN_USERS_PER_ARM]
    if not short:
        return None
    return f"{' and '.join(short)} user(s); a variance needs at least {MIN_USERS_PER_ARM} users per arm"


def _overflowed(control: Arm, treatment: Arm) -> str | None:
    """Σy² near the float limit makes (Σy)² and the variance inf or NaN; say so rather than report garbage."""
    for name, arm in (("control", control), ("treatment", treatment)):
        if isinstance(arm, SampleMoments) and not all(
            math.isfinite(x) for x in (arm.sum, arm.sum_squares, arm.sum * arm.sum)
        ):
            return f"the {name} sums overflow floating point"
    return None


def _welch(kind: EffectKind, effect: float, variance: float, dof: float, alpha: float) -> Comparison:
    std_error = math.sqrt(variance)
    if not all(math.isfinite(x) for x in (effect, std_error, dof)):
        return Comparison(kind, Method.WELCH_T, Status.UNDEFINED, "the statistics overflow floating point",
                          effect=effect if math.isfinite(effect) else None)
    t = effect / std_error
    quantile = float(stats.t.isf(alpha / 2, dof))
    return Comparison(
        kind=kind,
        method=Method.WELCH_T,
        status=Status.OK,
        reason=None,
        effect=effect,
        ci_lower=effect - quantile * std_error,
        ci_upper=effect + quantile * std_error,
        p_value=float(2 * stats.t.sf(abs(t), dof)),
        std_error=std_error,
        statistic=t,
        dof=dof,
    )


_NO_VARIANCE = "both arms have zero variance (every user has the same value), so there is no noise to test against"


def absolute_difference(control: Arm, treatment: Arm, alpha: float = 0.05) -> Comparison:
    """Δ = m_t − m_c by Welch's t-test; for a binomial arm at 0% or 100%, a pooled z or Fisher's exact test."""
    validate_alpha(alpha)
    _check_arms(control, treatment)
    kind = EffectKind.ABSOLUTE
    if control.n == 0 or treatment.n == 0:
        return Comparison(kind, Method.WELCH_T, Status.INSUFFICIENT_DATA, _too_few_users(control, treatment))
    effect = treatment.mean - control.mean
    if (reason := _too_few_users(control, treatment)) is not None:
        return Comparison(kind, Method.WELCH_T, Status.INSUFFICIENT_DATA, reason, effect=effect)
    if (reason := _overflowed(control, treatment)) is not None:
        return Comparison(kind, Method.WELCH_T, Status.UNDEFINED, reason)
    if (
        isinstance(control, Proportion)
        and isinstance(treatment, Proportion)
        and (is_at_boundary(control) or is_at_boundary(treatment))
    ):
        return boundary_difference(control, treatment, alpha)
    variance = control.variance / control.n + treatment.variance / treatment.n
    if variance == 0:
        return Comparison(kind, Method.WELCH_T, Status.UNDEFINED, _NO_VARIANCE, effect=effect)
    return _welch(kind, effect, variance, welch_dof(control, treatment), alpha)


def relative_difference(control: Arm, treatment: Arm, alpha: float = 0.05) -> Comparison:
    """Δ = m_t/m_c − 1 by Welch's t-test on the delta-method variance; undefined unless m_c > 0."""
    validate_alpha(alpha)
    _check_arms(control, treatment)
    kind = EffectKind.RELATIVE
    if control.n == 0 or treatment.n == 0:
        return Comparison(kind, Method.WELCH_T, Status.INSUFFICIENT_DATA, _too_few_users(control, treatment))
    m_c, m_t = control.mean, treatment.mean
    effect = m_t / m_c - 1 if m_c > 0 else None
    if (reason := _too_few_users(control, treatment)) is not None:
        return Comparison(kind, Method.WELCH_T, Status.INSUFFICIENT_DATA, reason, effect=effect)
    if (reason := _overflowed(control, treatment)) is not None:
        return Comparison(kind, Method.WELCH_T, Status.UNDEFINED, reason)
    if effect is None:
        return Comparison(
            kind, Method.WELCH_T, Status.UNDEFINED,
            f"the relative lift needs a positive control mean and the control mean is {m_c:g}; "
            "see the absolute difference",
        )
    if isinstance(control, Proportion) and isinstance(treatment, Proportion):
        at_boundary = [name for name, arm in (("control", control), ("treatment", treatment)) if is_at_boundary(arm)]
        if at_boundary:
            return Comparison(
                kind, Method.WELCH_T, Status.UNDEFINED,
                f"{' and '.join(at_boundary)} converted at 0% or 100%, where the delta-method variance of the lift "
                "is not valid; see the absolute difference for a test that is",
                effect=effect,
            )
    v_c, v_t = control.variance, treatment.variance
    ratio = m_t / m_c
    # v_t/(n_t·m_c²) + v_c·m_t²/(n_c·m_c⁴), arranged so that large means overflow to inf rather than raise.
    variance = (v_t / treatment.n + v_c * ratio * ratio / control.n) / (m_c * m_c)
    if v_c == 0 and v_t == 0:
        return Comparison(kind, Method.WELCH_T, Status.UNDEFINED, _NO_VARIANCE, effect=effect)
    return _welch(kind, effect, variance, welch_dof(control, treatment), alpha)


def compare(control: Arm, treatment: Arm, alpha: float = 0.05) -> TreatmentComparison:
    """The treatment against the control on both scales."""
    return TreatmentComparison(
        relative=relative_difference(control, treatment, alpha),
        absolute=absolute_difference(control, treatment, alpha),
    )


def compare_to_control(arms: Sequence[Arm], alpha: float = 0.05) -> list[TreatmentComparison]:
    """Each of ``arms[1:]`` against ``arms[0]`` (the control), each at level α with no multiplicity correction."""
    if len(arms) < 2:
        raise ValueError("need the control and at least one treatment")
    control = arms[0]
    return [compare(control, treatment, alpha) for treatment in arms[1:]]
