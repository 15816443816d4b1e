"""One entry point per reading for any metric's sufficient statistic: the estimator follows the statistic's type.

- ``Proportion`` / ``SampleMoments``: Welch on proportions or means (``frequentist``);
- ``RatioMoments``: the delta method for Σm/Σd (``ratio``);
- ``CovariateMoments``: CUPED regression adjustment with the pooled θ (``cuped``), which also reports how much
  variance the covariate removed.

Both arms must hold the same type of statistic; anything else is a programming error and raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.analyzer.stats.bayesian import (
    BayesianComparison,
    GaussianPrior,
    bayesian_compare,
    bayesian_compare_cuped,
    bayesian_compare_ratio,
)
from services.analyzer.stats.cuped import compare_cuped
from services.analyzer.stats.frequentist import compare
from services.analyzer.stats.ratio import compare_ratio
from services.analyzer.stats.results import TreatmentComparison
from splitstream.statistics import CovariateMoments, Proportion, RatioMoments, SampleMoments

Statistic = Proportion | SampleMoments | RatioMoments | CovariateMoments
"""A metric's sufficient statistic in one arm, whatever its kind."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """The fixed-horizon comparison on both scales; CUPED adds the share of Var(Δ) it removed per scale."""

    comparison: TreatmentComparison
    variance_reduction_relative: float | None = None
    variance_reduction_absolute: float | None = None


def _mismatch(control: Statistic, treatment: Statistic) -> ValueError:
    return ValueError(
        f"control and treatment must be the same kind of statistic, got {type(control).__name__} and "
        f"{type(treatment).__name__}"
    )


def estimate(control: Statistic, treatment: Statistic, alpha: float) -> Estimate:
    """The two-sided fixed-horizon comparison of ``treatment`` against ``control``."""
    if isinstance(control, CovariateMoments) and isinstance(treatment, CovariateMoments):
        cuped = compare_cuped(control, treatment, alpha)
        return Estimate(cuped.adjusted, cuped.variance_reduction_relative, cuped.variance_reduction_absolute)
    if isinstance(control, RatioMoments) and isinstance(treatment, RatioMoments):
        return Estimate(compare_ratio(control, treatment, alpha))
    if isinstance(control, Proportion | SampleMoments) and isinstance(treatment, Proportion | SampleMoments):
        return Estimate(compare(control, treatment, alpha))
    raise _mismatch(control, treatment)


def bayesian_estimate(
    control: Statistic, treatment: Statistic, alpha: float, prior: GaussianPrior | None = None
) -> BayesianComparison:
    """The Gaussian posterior of the effect on both scales (flat prior unless ``prior`` is given)."""
    if isinstance(control, CovariateMoments) and isinstance(treatment, CovariateMoments):
        return bayesian_compare_cuped(control, treatment, alpha, prior)
    if isinstance(control, RatioMoments) and isinstance(treatment, RatioMoments):
        return bayesian_compare_ratio(control, treatment, alpha, prior)
    if isinstance(control, Proportion | SampleMoments) and isinstance(treatment, Proportion | SampleMoments):
        return bayesian_compare(control, treatment, alpha, prior)
    raise _mismatch(control, treatment)
