"""Equivalence: is the effect shown to lie within a margin, i.e. is the treatment proved neutral?

Two one-sided tests (TOST; Schuirmann 1987) on the same Δ̂, SE and Welch ν the frequentist comparison uses, against
the equivalence region (L, U) — a symmetric margin δ gives (−δ, δ). The margin is on the comparison's own scale:
a relative margin (0.02 = ±2% lift) with the relative comparison, an absolute one (in the metric's units) with the
absolute comparison.

    H0: Δ ≤ L or Δ ≥ U    against    H1: L < Δ < U
    p_L = T_ν.sf((Δ̂ − L)/SE),  p_U = T_ν.sf((U − Δ̂)/SE),  p_TOST = max(p_L, p_U)

Equivalence is shown at level α when p_TOST < α, which is the same as the 1 − 2α interval
Δ̂ ± T_ν.isf(α)·SE lying inside (L, U). ``dof=None`` uses the normal distribution instead of Student's t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from services.analyzer.stats.frequentist import Arm, validate_alpha
from services.analyzer.stats.results import EffectKind, Method, Status
from services.analyzer.stats.sequential import unusable_reason, welch_comparison


@dataclass(frozen=True, slots=True)
class EquivalenceResult:
    """TOST of Δ within (``lower_margin``, ``upper_margin``); ``[ci_lower, ci_upper]`` is the 1 − 2α interval.

    ``equivalent`` is True only when the test ran (status "ok") and p_TOST < α.
    """

    kind: EffectKind
    status: Status
    reason: str | None
    lower_margin: float
    upper_margin: float
    alpha: float
    equivalent: bool = False
    effect: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    p_value_lower: float | None = None
    p_value_upper: float | None = None
    std_error: float | None = None
    dof: float | None = None
    method: Method = Method.TOST


def equivalence_region(margin: float | tuple[float, float]) -> tuple[float, float]:
    """(L, U) from a margin δ > 0, giving (−δ, δ), or from explicit bounds L < 0 < U."""
    lower, upper = (-margin, margin) if isinstance(margin, int | float) else margin
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < 0 < upper):
        raise ValueError(f"the equivalence region must satisfy L < 0 < U with finite bounds, got {margin!r}")
    return float(lower), float(upper)


def equivalence_test(
    effect: float,
    std_error: float,
    margin: float | tuple[float, float],
    alpha: float = 0.05,
    dof: float | None = None,
    kind: EffectKind = EffectKind.RELATIVE,
) -> EquivalenceResult:
    """TOST from an estimate Δ̂ with standard error SE and (Welch) degrees of freedom ν (module docstring)."""
    validate_alpha(alpha)
    if not alpha < 0.5:
        raise ValueError(f"the 1 − 2α interval of a TOST needs alpha < 0.5, got {alpha!r}")
    lower, upper = equivalence_region(margin)
    if std_error < 0 or (dof is not None and not dof > 0):
        raise ValueError("std_error must be non-negative and dof positive")
    if not (math.isfinite(effect) and math.isfinite(std_error) and (dof is None or math.isfinite(dof))):
        return EquivalenceResult(kind, Status.UNDEFINED, "the estimate, its standard error or ν is not finite",
                                 lower, upper, alpha)
    if std_error == 0:
        return EquivalenceResult(kind, Status.UNDEFINED, "the standard error is 0: no noise to test against",
                                 lower, upper, alpha, effect=effect)
    distribution = stats.norm if dof is None else stats.t(dof)
    p_lower = float(distribution.sf((effect - lower) / std_error))
    p_upper = float(distribution.sf((upper - effect) / std_error))
    p_value = max(p_lower, p_upper)
    half_width = float(distribution.isf(alpha)) * std_error
    equivalent = p_value < alpha
    reason = None if equivalent else (
        f"the 1 − 2α interval is not inside ({lower:g}, {upper:g}): equivalence is not shown (p = {p_value:.3g})"
    )
    return EquivalenceResult(
        kind, Status.OK, reason, lower, upper, alpha,
        equivalent=equivalent, effect=effect, ci_lower=effect - half_width, ci_upper=effect + half_width,
        p_value=p_value, p_value_lower=p_lower, p_value_upper=p_upper, std_error=std_error, dof=dof,
    )


def equivalence_compare(
    control: Arm,
    treatment: Arm,
    margin: float | tuple[float, float],
    kind: EffectKind = EffectKind.RELATIVE,
    alpha: float = 0.05,
) -> EquivalenceResult:
    """TOST on the Welch comparison of the arms (Δ̂, SE and ν as ``frequentist`` computes them) on scale ``kind``."""
    validate_alpha(alpha)
    lower, upper = equivalence_region(margin)
    comparison = welch_comparison(control, treatment, kind)
    if (reason := unusable_reason(comparison)) is not None:
        status = comparison.status if comparison.status is not Status.OK else Status.UNDEFINED
        return EquivalenceResult(kind, status, reason, lower, upper, alpha, effect=comparison.effect)
    assert comparison.effect is not None and comparison.std_error is not None
    return equivalence_test(comparison.effect, comparison.std_error, (lower, upper), alpha, comparison.dof, kind)
