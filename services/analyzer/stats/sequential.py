"""Sequential tests: results that stay valid although the experiment is read before it ends.

Two modes, both on the effect Δ̂, its standard error SE and z = Δ̂/SE of the fixed-horizon Welch comparison
(``frequentist``; relative or absolute scale):

**Always-valid confidence sequence** (``confidence_sequence``), the asymptotic CS of Waudby-Smith, Arnold, Wu,
Howard & Ramdas (2023), "Time-uniform central limit theory and asymptotic confidence sequences", Ann. Statist.
(arXiv:2103.06476, eq. 161 for ρ), as gbstats' ``SequentialTwoSidedTTest`` computes it. With N = n_c + n_t users
and the tuning parameter N* (the N at which the sequence is tightest):

    ρ² = (−2 ln α + ln(1 − 2 ln α)) / N*
    half-width = SE · c_N,   c_N = √( 2(Nρ² + 1)/(Nρ²) · ln(√(Nρ² + 1)/α) )

(gbstats writes the half-width as σ̂·√(2(Nρ²+1)/(N²ρ²)·ln(√(Nρ²+1)/α)) with σ̂² = N·SE², the same number.) The
always-valid p-value is the inverse of the normal-mixture e-value, p = min(1, √(Nρ² + 1)·exp(−Nρ²z²/(2(Nρ² + 1)))),
so that p ≤ α exactly when 0 lies outside the sequence. N* has NO default: the caller sets it from the planned
sample (``tuning_parameter_from_plan``); gbstats' default of 5,000 makes the sequence very wide at 10⁴–10⁵ users.

**Planned-horizon group-sequential test** (``group_sequential_test``): Lan & DeMets (1983) alpha spending with the
O'Brien–Fleming-type function α*(t) = 2 − 2Φ(z_{1−α/2}/√t) (two-sided; α*(1) = α, and α*(t) = α for t ≥ 1) over
the looks actually taken, t_k = N_k / N_planned. (This spends the two-sided α as one budget; gsDesign/ldbounds
instead spend α/2 per side with 2 − 2Φ(z_{1−α/4}/√t), e.g. c = 4.88, …, 2.03 for five equal looks where this gives
4.38, …, 2.06: both are valid spending functions that reach α at t = 1.) The efficacy boundary c_k of look k solves

    P(|Z_1| < c_1, …, |Z_{k−1}| < c_{k−1}, |Z_k| ≥ c_k) = α*(t_k) − α*(t_{k−1})

under H0, where (Z_k √t_k) is Brownian motion in t, i.e. corr(Z_i, Z_j) = √(t_i/t_j). The probability is computed
by numerical integration (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19): the sub-density of
S_k = Z_k √t_k on the continuation region is carried from look to look by convolution with the N(0, t_k − t_{k−1})
kernel, on a uniform grid with Simpson weights; c_k is then found by root finding. At the current look H0 is
rejected when |z| ≥ c_k; the repeated confidence interval is Δ̂ ± c_k·SE (Jennison & Turnbull 1989).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

from services.analyzer.stats.frequentist import Arm, absolute_difference, relative_difference, validate_alpha
from services.analyzer.stats.results import Comparison, EffectKind, Method, Status

GRID_POINTS_PER_SD = 24
"""Grid step = (smallest standard deviation of the kernel or the density) / 24: boundaries to ~2e-7 relative."""
GRID_TAIL_SDS = 12.0
"""Where no boundary truncates S_k, the grid stops 12 standard deviations out (the mass beyond is ~1e-33)."""


@dataclass(frozen=True, slots=True)
class ConfidenceSequenceResult:
    """One look at an always-valid confidence sequence; ``p_value`` is always valid too (see module docstring)."""

    kind: EffectKind
    status: Status
    reason: str | None
    tuning_parameter: float
    total_users: int
    effect: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    std_error: float | None = None
    statistic: float | None = None
    rho: float | None = None
    method: Method = Method.CONFIDENCE_SEQUENCE


@dataclass(frozen=True, slots=True)
class GroupSequentialResult:
    """The current (last) look of a group-sequential test with O'Brien–Fleming-type alpha spending.

    ``boundary`` is c_k on the z scale (``None`` when no alpha is left to spend at this look, so H0 cannot be
    rejected); ``nominal_alpha`` = 2Φ̄(c_k), the two-sided level the look tests at; ``alpha_spent`` = α*(t_k), the
    cumulative type-I error spent up to and including this look; ``[ci_lower, ci_upper]`` the repeated CI Δ̂ ± c_k·SE.
    """

    kind: EffectKind
    status: Status
    reason: str | None
    look: int
    information_fraction: float
    alpha_spent: float
    reject: bool = False
    boundary: float | None = None
    nominal_alpha: float | None = None
    effect: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    std_error: float | None = None
    statistic: float | None = None
    method: Method = Method.GROUP_SEQUENTIAL


def welch_comparison(control: Arm, treatment: Arm, kind: EffectKind) -> Comparison:
    """The fixed-horizon comparison whose Δ̂, SE and ν the sequential and equivalence tests start from."""
    return (relative_difference if kind is EffectKind.RELATIVE else absolute_difference)(control, treatment)


def unusable_reason(comparison: Comparison) -> str | None:
    """Why a comparison gives no normal-approximation Δ̂ and SE to build on, or None when it does."""
    if comparison.status is not Status.OK:
        return comparison.reason or comparison.status.value
    if comparison.method is not Method.WELCH_T:
        return f"{comparison.reason}; this test needs the normal approximation, which is not valid there"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Always-valid confidence sequence
# ---------------------------------------------------------------------------------------------------------------


def tuning_parameter_from_plan(planned_control_users: int, planned_treatment_users: int) -> float:
    """N* for ``confidence_sequence``: the users the two compared arms are planned to reach (N = n_c + n_t).

    ρ above minimises the sequence's width at N = N*, so N* should be the sample at which the experiment is meant
    to be read for the decision, e.g. twice ``power.sample_size(...).users_per_variant``.
    """
    if planned_control_users <= 0 or planned_treatment_users <= 0:
        raise ValueError("planned users must be positive")
    return float(planned_control_users + planned_treatment_users)


def _validate_tuning(tuning_parameter: float) -> None:
    if not (math.isfinite(tuning_parameter) and tuning_parameter > 0):
        raise ValueError(f"tuning_parameter (N*) must be positive and finite, got {tuning_parameter!r}")


def confidence_sequence_rho(alpha: float, tuning_parameter: float) -> float:
    """ρ = √((−2 ln α + ln(1 − 2 ln α))/N*)."""
    validate_alpha(alpha)
    _validate_tuning(tuning_parameter)
    log_alpha = math.log(alpha)
    return math.sqrt((-2 * log_alpha + math.log(1 - 2 * log_alpha)) / tuning_parameter)


def confidence_sequence_critical_z(total_users: int, alpha: float, tuning_parameter: float) -> float:
    """c_N = √(2(Nρ² + 1)/(Nρ²)·ln(√(Nρ² + 1)/α)): the sequence is Δ̂ ± c_N·SE, and rejects H0 iff |z| ≥ c_N."""
    if total_users <= 0:
        raise ValueError("total_users must be positive")
    rho = confidence_sequence_rho(alpha, tuning_parameter)
    scaled = total_users * rho * rho
    return math.sqrt(2 * (scaled + 1) / scaled * (0.5 * math.log1p(scaled) - math.log(alpha)))


def always_valid_p_value(z: float, total_users: int, alpha: float, tuning_parameter: float) -> float:
    """p = min(1, √(Nρ² + 1)·exp(−Nρ²z²/(2(Nρ² + 1)))), computed in logs so it neither overflows nor raises."""
    if total_users <= 0:
        raise ValueError("total_users must be positive")
    rho = confidence_sequence_rho(alpha, tuning_parameter)
    scaled = total_users * rho * rho
    log_p = 0.5 * math.log1p(scaled) - scaled * z * z / (2 * (scaled + 1))
    return math.exp(min(0.0, log_p))


def confidence_sequence(
    control: Arm, treatment: Arm, kind: EffectKind, alpha: float = 0.05, *, tuning_parameter: float
) -> ConfidenceSequenceResult:
    """The always-valid CS and p-value of Δ (module docstring) at N = n_c + n_t, from the Welch Δ̂ and SE."""
    validate_alpha(alpha)
    _validate_tuning(tuning_parameter)
    total = control.n + treatment.n
    comparison = welch_comparison(control, treatment, kind)
    if (reason := unusable_reason(comparison)) is not None:
        status = comparison.status if comparison.status is not Status.OK else Status.UNDEFINED
        return ConfidenceSequenceResult(kind, status, reason, tuning_parameter, total, effect=comparison.effect)
    assert comparison.effect is not None and comparison.std_error is not None and comparison.statistic is not None
    return confidence_sequence_from_estimate(
        comparison.effect, comparison.std_error, total, alpha, tuning_parameter=tuning_parameter, kind=kind
    )


def confidence_sequence_from_estimate(
    effect: float,
    std_error: float,
    total_users: int,
    alpha: float = 0.05,
    *,
    tuning_parameter: float,
    kind: EffectKind = EffectKind.RELATIVE,
) -> ConfidenceSequenceResult:
    """The CS from an estimate Δ̂ with standard error SE after N = ``total_users`` users."""
    validate_alpha(alpha)
    _validate_tuning(tuning_parameter)
    if total_users <= 0 or std_error < 0:
        raise ValueError("total_users must be positive and std_error non-negative")
    if not (math.isfinite(effect) and math.isfinite(std_error)):
        return ConfidenceSequenceResult(kind, Status.UNDEFINED, "the estimate or its standard error is not finite",
                                        tuning_parameter, total_users)
    if std_error == 0:
        return ConfidenceSequenceResult(kind, Status.UNDEFINED, "the standard error is 0: no noise to test against",
                                        tuning_parameter, total_users, effect=effect)
    z = effect / std_error
    half_width = std_error * confidence_sequence_critical_z(total_users, alpha, tuning_parameter)
    return ConfidenceSequenceResult(
        kind, Status.OK, None, tuning_parameter, total_users,
        effect=effect, ci_lower=effect - half_width, ci_upper=effect + half_width,
        p_value=always_valid_p_value(z, total_users, alpha, tuning_parameter),
        std_error=std_error, statistic=z, rho=confidence_sequence_rho(alpha, tuning_parameter),
    )


# ---------------------------------------------------------------------------------------------------------------
# Planned-horizon group-sequential test (Lan–DeMets O'Brien–Fleming spending)
# ---------------------------------------------------------------------------------------------------------------


def obrien_fleming_alpha_spent(information_fraction: float, alpha: float = 0.05) -> float:
    """α*(t) = 2 − 2Φ(z_{1−α/2}/√t) = 2Φ̄(z_{1−α/2}/√t) for 0 < t < 1, and α for t ≥ 1."""
    validate_alpha(alpha)
    if not information_fraction > 0:
        raise ValueError(f"information fraction must be positive, got {information_fraction!r}")
    if information_fraction >= 1:
        return alpha
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(information_fraction)))


def validate_information_fractions(information_fractions: Sequence[float]) -> tuple[float, ...]:
    fractions = tuple(float(t) for t in information_fractions)
    if not fractions:
        raise ValueError("need the information fraction of at least one look")
    if not all(math.isfinite(t) and t > 0 for t in fractions):
        raise ValueError("information fractions must be positive and finite")
    if any(later <= earlier for earlier, later in itertools.pairwise(fractions)):
        raise ValueError("information fractions must increase strictly from look to look")
    return fractions


def information_fractions_of(users_at_looks: Sequence[int], planned_users: int) -> tuple[float, ...]:
    """t_k = N_k / N_planned for the users (both arms) counted at each look taken so far."""
    if planned_users <= 0:
        raise ValueError("planned_users must be positive")
    return validate_information_fractions([users / planned_users for users in users_at_looks])


def _simpson_grid(half_width: float, step: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Points on [−half_width, half_width] no further apart than ``step``, with composite Simpson weights."""
    intervals = 2 * max(2, math.ceil(half_width / step))
    points = np.linspace(-half_width, half_width, intervals + 1)
    h = points[1] - points[0]
    weights = np.full(intervals + 1, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return points, weights * h / 3


@dataclass(frozen=True, slots=True)
class _ContinuationDensity:
    """The sub-density of S_k = Z_k √t_k over the paths that crossed no boundary up to look k, on a grid.

    ``masses`` = Simpson weight × sub-density at each of ``points``, so that sums against it are integrals.
    Before the first look (``information`` 0) there is no grid: S_0 = 0 with certainty.
    """

    points: NDArray[np.float64]
    masses: NDArray[np.float64]
    information: float

    def crossing_probability(self, boundary: float, information: float) -> float:
        """P(no crossing so far, |Z| ≥ boundary at the next look, with information ``information``)."""
        if self.points.size == 0:
            return float(2 * stats.norm.sf(boundary))
        sd = math.sqrt(information - self.information)
        edge = boundary * math.sqrt(information)
        beyond = stats.norm.sf((edge - self.points) / sd) + stats.norm.sf((edge + self.points) / sd)
        return float(self.masses @ beyond)

    def solve_boundary(self, increment: float, information: float) -> float:
        """c with crossing probability ``increment`` (root finding on its logarithm: increments can be ~1e-20)."""
        if increment <= 0:
            return math.inf
        if self.crossing_probability(0.0, information) <= increment:
            return 0.0
        # c ≤ isf(increment/2), since the crossing probability is at most P(|Z_k| ≥ c) = 2Φ̄(c); + 1 leaves room
        # for the quadrature's error where the two are nearly equal (early looks).
        high = float(stats.norm.isf(increment / 2)) + 1.0
        target = math.log(increment)
        return float(optimize.brentq(
            lambda c: math.log(max(self.crossing_probability(c, information), 1e-300)) - target,
            0.0, high, xtol=1e-12, rtol=1e-12,
        ))

    def advanced(self, boundary: float, information: float) -> _ContinuationDensity:
        """The density at the next look, truncated to |S| < boundary·√information."""
        sd = math.sqrt(information - self.information)
        root_t = math.sqrt(information)
        half_width = min(boundary * root_t, GRID_TAIL_SDS * root_t)
        points, weights = _simpson_grid(half_width, min(sd, root_t) / GRID_POINTS_PER_SD)
        if self.points.size == 0:
            density = stats.norm.pdf(points / sd) / sd
        else:
            density = (stats.norm.pdf((points[:, None] - self.points[None, :]) / sd) / sd) @ self.masses
        return _ContinuationDensity(points, weights * density, information)


_BEFORE_FIRST_LOOK = _ContinuationDensity(np.zeros(0), np.zeros(0), 0.0)


@lru_cache(maxsize=512)
def _look(fractions: tuple[float, ...], alpha: float) -> tuple[float, _ContinuationDensity]:
    """(c_k, continuation density after look k) for k = len(fractions), built on the cached look k − 1, so that
    an experiment read look after look costs one step per look."""
    t = fractions[-1]
    if len(fractions) == 1:
        density, spent_before = _BEFORE_FIRST_LOOK, 0.0
    else:
        _, density = _look(fractions[:-1], alpha)
        spent_before = obrien_fleming_alpha_spent(fractions[-2], alpha)
    boundary = density.solve_boundary(obrien_fleming_alpha_spent(t, alpha) - spent_before, t)
    return boundary, density.advanced(boundary, t)


def _boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """c_1 … c_K on the z scale (math.inf where a look has no alpha to spend); see the module docstring."""
    # Shortest prefix first, so that each call finds its predecessor cached (no deep recursion).
    return tuple(_look(fractions[:k], alpha)[0] for k in range(1, len(fractions) + 1))


def obrien_fleming_boundaries(information_fractions: Sequence[float], alpha: float = 0.05) -> tuple[float | None, ...]:
    """The z-scale efficacy boundary c_k of every look; ``None`` where a look has no alpha left to spend."""
    validate_alpha(alpha)
    fractions = validate_information_fractions(information_fractions)
    return tuple(None if math.isinf(c) else c for c in _boundaries(fractions, alpha))


def group_sequential_test(
    effect: float,
    std_error: float,
    information_fractions: Sequence[float],
    alpha: float = 0.05,
    kind: EffectKind = EffectKind.RELATIVE,
) -> GroupSequentialResult:
    """Test H0: Δ = 0 at the LAST of ``information_fractions`` (the current look); the earlier ones are the looks
    already taken, whose boundaries were not crossed (otherwise the experiment would have stopped there)."""
    validate_alpha(alpha)
    fractions = validate_information_fractions(information_fractions)
    if std_error < 0:
        raise ValueError("std_error must be non-negative")
    look, t = len(fractions), fractions[-1]
    exact_boundary = _boundaries(fractions, alpha)[-1]
    boundary = None if math.isinf(exact_boundary) else exact_boundary
    base = GroupSequentialResult(
        kind, Status.OK, None, look, t, obrien_fleming_alpha_spent(t, alpha), boundary=boundary,
        nominal_alpha=None if boundary is None else float(2 * stats.norm.sf(boundary)),
    )
    if not (math.isfinite(effect) and math.isfinite(std_error)):
        return replace(base, status=Status.UNDEFINED, reason="the estimate or its standard error is not finite")
    if std_error == 0:
        return replace(base, status=Status.UNDEFINED, reason="the standard error is 0: no noise to test against",
                       effect=effect)
    z = effect / std_error
    measured = replace(base, effect=effect, std_error=std_error, statistic=z)
    if boundary is None:
        return replace(
            measured,
            reason=f"all of α = {alpha:g} was spent at earlier looks (t = {t:.3g} is past the planned horizon): "
                   "this look cannot reject, and its repeated interval is unbounded (reported as None)",
        )
    return replace(measured, reject=abs(z) >= boundary,
                   ci_lower=effect - boundary * std_error, ci_upper=effect + boundary * std_error)


def group_sequential_compare(
    control: Arm,
    treatment: Arm,
    kind: EffectKind,
    information_fractions: Sequence[float],
    alpha: float = 0.05,
) -> GroupSequentialResult:
    """``group_sequential_test`` on the Welch Δ̂ and SE of the arms as they are at the current look."""
    validate_alpha(alpha)
    fractions = validate_information_fractions(information_fractions)
    comparison = welch_comparison(control, treatment, kind)
    if (reason := unusable_reason(comparison)) is not None:
        status = comparison.status if comparison.status is not Status.OK else Status.UNDEFINED
        return GroupSequentialResult(kind, status, reason, len(fractions), fractions[-1],
                                     obrien_fleming_alpha_spent(fractions[-1], alpha), effect=comparison.effect)
    assert comparison.effect is not None and comparison.std_error is not None
    return group_sequential_test(comparison.effect, comparison.std_error, fractions, alpha, kind)
