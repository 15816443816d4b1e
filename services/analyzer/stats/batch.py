"""Many comparisons at once: the readout of variants × metrics × segments in a few numpy operations.

``compare_batch(pairs, alpha)`` returns exactly what ``[compare(c, t, alpha) for c, t in pairs]`` returns (two-sided
Welch on both scales; formulas in ``frequentist``). Pairs of the regular case — both arms with n ≥ 2, positive
variances, a positive control mean, finite sums, binomial rates strictly between 0% and 100% — are computed as
arrays; every other pair (degenerate data, boundary rates, overflow) goes through the scalar ``compare``, which
owns the statuses and reasons. The same operations in the same order make the two paths agree to the last bit
wherever numpy and Python round alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

from services.analyzer.stats.frequentist import Arm, compare, validate_alpha
from services.analyzer.stats.results import Comparison, EffectKind, Method, Status, TreatmentComparison
from splitstream.statistics import Proportion

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Arms:
    n: Floats
    mean: Floats
    variance: Floats
    finite: NDArray[np.bool_]
    inside: NDArray[np.bool_]
    """Binomial rate strictly between 0 and 1 (always true for means)."""


def _arms(arms: Sequence[Arm]) -> _Arms:
    n = np.array([arm.n for arm in arms], dtype=np.float64)
    first = np.array([float(arm.conversions) if isinstance(arm, Proportion) else arm.sum for arm in arms])
    second = np.array([float(arm.conversions) if isinstance(arm, Proportion) else arm.sum_squares for arm in arms])
    binomial = np.array([isinstance(arm, Proportion) for arm in arms], dtype=np.bool_)
    with np.errstate(all="ignore"):
        safe_n = np.where(n > 0, n, np.nan)
        mean = first / safe_n
        moments_variance = np.maximum(0.0, (second - first * first / safe_n) / (safe_n - 1))
        variance = np.where(binomial, mean * (1.0 - mean), moments_variance)
        finite = np.isfinite(first) & np.isfinite(second) & np.isfinite(first * first)
    inside = ~binomial | ((first > 0) & (first < n))
    return _Arms(n, mean, variance, finite, inside)


def _welch(effect: Floats, variance: Floats, dof: Floats, alpha: float) -> tuple[Floats, ...]:
    std_error = np.sqrt(variance)
    t = effect / std_error
    quantile = -special.stdtrit(dof, alpha / 2)
    p_value = np.minimum(2 * special.stdtr(dof, -np.abs(t)), 1.0)
    lower, upper = effect - quantile * std_error, effect + quantile * std_error
    return effect, lower, upper, p_value, std_error, t, dof


def _comparisons(kind: EffectKind, columns: tuple[Floats, ...], row: int) -> Comparison:
    effect, lower, upper, p_value, std_error, t, dof = (float(column[row]) for column in columns)
    return Comparison(kind, Method.WELCH_T, Status.OK, None, effect, lower, upper, p_value, std_error, t, dof)


def compare_batch(pairs: Sequence[tuple[Arm, Arm]], alpha: float = 0.05) -> list[TreatmentComparison]:
    """``compare(control, treatment, alpha)`` for every pair, the regular ones vectorised."""
    validate_alpha(alpha)
    if not pairs:
        return []
    control, treatment = _arms([c for c, _ in pairs]), _arms([t for _, t in pairs])
    same_kind = np.array([type(c) is type(t) for c, t in pairs], dtype=np.bool_)
    with np.errstate(all="ignore"):
        share_c, share_t = control.variance / control.n, treatment.variance / treatment.n
        total = share_c + share_t
        dof = total * total / (share_c * share_c / (control.n - 1) + share_t * share_t / (treatment.n - 1))
        absolute = _welch(treatment.mean - control.mean, share_c + share_t, dof, alpha)
        scale = treatment.mean / control.mean
        relative_variance = (share_t + control.variance * scale * scale / control.n) / (control.mean * control.mean)
        relative = _welch((treatment.mean - control.mean) / control.mean, relative_variance, dof, alpha)
        regular = (
            same_kind
            & (control.n >= 2) & (treatment.n >= 2)
            & control.finite & treatment.finite & control.inside & treatment.inside
            & (control.mean > 0) & (control.variance > 0) & (treatment.variance > 0)
            & np.all(np.isfinite(np.vstack(absolute + relative)), axis=0)
            & (absolute[4] > 0) & (relative[4] > 0)
        )
    return [
        TreatmentComparison(
            relative=_comparisons(EffectKind.RELATIVE, relative, row),
            absolute=_comparisons(EffectKind.ABSOLUTE, absolute, row),
        )
        if regular[row]
        else compare(pairs[row][0], pairs[row][1], alpha)
        for row in range(len(pairs))
    ]
