"""Sample size, duration and power of a conversion-rate experiment with equal allocation across its variants.

The baseline rate p1 and a relative MDE give the treatment rate p2 = p1·(1 + MDE). Two-sided tests at α', power
1 − β (z_q is the standard normal quantile Φ⁻¹(q)):

- **normal** (the plain formula, unpooled variance):
  n = (z_{1−α'/2} + z_{1−β})² · (p1(1 − p1) + p2(1 − p2)) / (p2 − p1)²   users per variant.
  Its power at n is Φ(|p2 − p1|/√((p1(1 − p1) + p2(1 − p2))/n) − z_{1−α'/2}), the exact inverse of the formula.
- **arcsine** (Cohen 1988; statsmodels ``NormalIndPower`` with ``proportion_effectsize``): Cohen's
  h = |2·asin√p2 − 2·asin√p1| makes the variance 1 per user, so with n per arm the z statistic has mean h√(n/2)
  and power(n) = Φ̄(z_{1−α'/2} − h√(n/2)) + Φ(−z_{1−α'/2} − h√(n/2)) (both rejection regions, as statsmodels
  counts them); n solves power(n) = 1 − β (Brent's method).

**Variants.** ``variants`` counts every arm, control included; each of the k = variants − 1 treatments is compared
with the control. With ``bonferroni=True`` (the default) each comparison is planned at α' = α/k: the readout
corrects the treatment-vs-control family with Holm (``multiple``), whose strictest step is exactly α/k, so planning
at α/k guarantees every comparison its power under that correction (Holm can only be more lenient for the rest).
With ``bonferroni=False``, α' = α and each comparison keeps the power only if it is read uncorrected. Either way
every arm needs the same n, and the experiment needs variants·n users in total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from scipy import optimize, stats

from services.analyzer.stats.frequentist import validate_alpha


class PowerMethod(StrEnum):
    NORMAL = "normal"
    """The plain normal formula with unpooled variance p1(1 − p1) + p2(1 − p2)."""
    ARCSINE = "arcsine"
    """Cohen's h (arcsine transform), as statsmodels' NormalIndPower with proportion_effectsize."""


@dataclass(frozen=True, slots=True)
class SampleSizePlan:
    """Users each variant needs; ``exact_users_per_variant`` is the formula's value before rounding up."""

    method: PowerMethod
    baseline_rate: float
    treatment_rate: float
    alpha: float
    alpha_per_comparison: float
    power: float
    variants: int
    effect_size: float
    """|p2 − p1| for the normal formula, Cohen's h for the arcsine method."""
    exact_users_per_variant: float
    users_per_variant: int
    total_users: int


def _validated_rates(baseline_rate: float, relative_mde: float) -> tuple[float, float]:
    if not 0 < baseline_rate < 1:
        raise ValueError(f"baseline_rate must be in (0, 1), got {baseline_rate!r}")
    treatment_rate = baseline_rate * (1 + relative_mde)
    if not (math.isfinite(relative_mde) and relative_mde != 0):
        raise ValueError(f"relative_mde must be non-zero and finite, got {relative_mde!r}")
    if not 0 < treatment_rate < 1:
        raise ValueError(f"baseline_rate·(1 + relative_mde) = {treatment_rate!r} is not a rate in (0, 1)")
    return baseline_rate, treatment_rate


def comparison_alpha(alpha: float, variants: int, bonferroni: bool) -> float:
    """α' for each treatment-vs-control comparison: α/(variants − 1) with Bonferroni, else α."""
    validate_alpha(alpha)
    if variants < 2:
        raise ValueError(f"an experiment needs at least 2 variants (control included), got {variants!r}")
    return alpha / (variants - 1) if bonferroni else alpha


def cohens_h(p1: float, p2: float) -> float:
    """|2·asin√p2 − 2·asin√p1|."""
    return abs(2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1)))


def _arcsine_power(h: float, users_per_variant: float, alpha: float) -> float:
    critical = float(stats.norm.isf(alpha / 2))
    shift = h * math.sqrt(users_per_variant / 2)
    return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def _normal_power(p1: float, p2: float, users_per_variant: float, alpha: float) -> float:
    std_error = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / users_per_variant)
    return float(stats.norm.cdf(abs(p2 - p1) / std_error - stats.norm.isf(alpha / 2)))


def sample_size(
    baseline_rate: float,
    relative_mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
    method: PowerMethod | str = PowerMethod.NORMAL,
    bonferroni: bool = True,
) -> SampleSizePlan:
    """Users per variant to detect p1 → p1·(1 + ``relative_mde``) (formulas and the role of ``variants`` above)."""
    p1, p2 = _validated_rates(baseline_rate, relative_mde)
    per_comparison = comparison_alpha(alpha, variants, bonferroni)
    if not per_comparison < power < 1:
        raise ValueError(f"power must be in (α' = {per_comparison:g}, 1), got {power!r}")
    chosen = PowerMethod(method)
    z_sum = float(stats.norm.isf(per_comparison / 2) + stats.norm.ppf(power))
    if chosen is PowerMethod.NORMAL:
        effect_size = abs(p2 - p1)
        exact = z_sum * z_sum * (p1 * (1 - p1) + p2 * (1 - p2)) / (effect_size * effect_size)
    else:
        effect_size = cohens_h(p1, p2)
        # Without the far rejection region n = 2(z_sum/h)²; counting it can only lower n, so the root lies below.
        upper = 2 * (z_sum / effect_size) ** 2
        h = effect_size

        def shortfall(n: float) -> float:
            return _arcsine_power(h, n, per_comparison) - power

        exact = upper if shortfall(upper) <= 0 else float(
            optimize.brentq(shortfall, upper * 1e-9, upper, xtol=1e-12, rtol=1e-14)
        )
    users = math.ceil(exact)
    return SampleSizePlan(chosen, p1, p2, alpha, per_comparison, power, variants, effect_size, exact, users,
                          users * variants)


def achieved_power(
    baseline_rate: float,
    relative_mde: float,
    users_per_variant: float,
    alpha: float = 0.05,
    variants: int = 2,
    method: PowerMethod | str = PowerMethod.NORMAL,
    bonferroni: bool = True,
) -> float:
    """The power each comparison has with ``users_per_variant`` users per arm (e.g. the users so far) for the MDE.

    The exact inverse of ``sample_size`` for the same method: achieved_power(exact_users_per_variant) = power.
    """
    p1, p2 = _validated_rates(baseline_rate, relative_mde)
    per_comparison = comparison_alpha(alpha, variants, bonferroni)
    if not (math.isfinite(users_per_variant) and users_per_variant > 0):
        raise ValueError(f"users_per_variant must be positive, got {users_per_variant!r}")
    if PowerMethod(method) is PowerMethod.NORMAL:
        return _normal_power(p1, p2, users_per_variant, per_comparison)
    return _arcsine_power(cohens_h(p1, p2), users_per_variant, per_comparison)


def expected_z(baseline_rate: float, relative_mde: float, users_per_variant: float) -> float:
    """E[z] of the absolute difference with n users per arm if the MDE is true: (p2 − p1)/√((p1q1 + p2q2)/n).

    At the planned n this is the drift θ that ``conditional_power`` assumes under the design.
    """
    p1, p2 = _validated_rates(baseline_rate, relative_mde)
    if not (math.isfinite(users_per_variant) and users_per_variant > 0):
        raise ValueError(f"users_per_variant must be positive, got {users_per_variant!r}")
    return (p2 - p1) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / users_per_variant)


def conditional_power(
    current_z: float, information_fraction: float, alpha: float = 0.05, final_drift: float | None = None
) -> float:
    """P(the fixed-horizon two-sided test rejects at the planned end | z so far), Lan & Wittes (1988).

    With B(t) = z·√t, the final B(1) = Z_final is N(B(t) + θ(1 − t), 1 − t), θ = E[Z_final]. ``final_drift`` is θ
    under the design (``expected_z`` at the planned users); ``None`` takes the current trend θ = z/√t. Then
    CP = Φ̄((z_{1−α/2} − μ)/√(1 − t)) + Φ((−z_{1−α/2} − μ)/√(1 − t)) with μ = B(t) + θ(1 − t).
    """
    validate_alpha(alpha)
    if not 0 < information_fraction < 1:
        raise ValueError(f"information_fraction must be in (0, 1); got {information_fraction!r}")
    if not math.isfinite(current_z) or (final_drift is not None and not math.isfinite(final_drift)):
        raise ValueError("current_z and final_drift must be finite")
    drift = current_z / math.sqrt(information_fraction) if final_drift is None else final_drift
    mean = current_z * math.sqrt(information_fraction) + drift * (1 - information_fraction)
    sd = math.sqrt(1 - information_fraction)
    critical = float(stats.norm.isf(alpha / 2))
    return float(stats.norm.sf((critical - mean) / sd) + stats.norm.cdf((-critical - mean) / sd))


def duration_days(users_per_variant: int, variants: int, daily_users: float, traffic_fraction: float = 1.0) -> int:
    """Whole days until every variant has its users: ⌈users_per_variant·variants / (daily_users·traffic_fraction)⌉.

    ``daily_users`` counts NEW eligible users a day (returning users add none), ``traffic_fraction`` the share of
    them the experiment enrols.
    """
    if users_per_variant < 0 or variants < 2:
        raise ValueError("users_per_variant must be non-negative and variants at least 2")
    if not (math.isfinite(daily_users) and daily_users > 0):
        raise ValueError(f"daily_users must be positive, got {daily_users!r}")
    if not 0 < traffic_fraction <= 1:
        raise ValueError(f"traffic_fraction must be in (0, 1], got {traffic_fraction!r}")
    return math.ceil(users_per_variant * variants / (daily_users * traffic_fraction))
