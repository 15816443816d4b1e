"""``/v1/stats/*``: wire requests mapped onto the pure engine, one function per endpoint.

``compare`` picks the estimator from ``metric_type`` and ``cuped`` (Welch on means or proportions, the delta
method for ratios, regression adjustment for CUPED), then reads it the way ``method`` asks: the fixed-horizon
test, the Gaussian posterior, or the always-valid confidence sequence around the same estimate and standard error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.analyzer.calculator.schemas import (
    VARIANT_MODELS,
    AdjustRequest,
    AdjustResponse,
    BinomialVariant,
    CompareRequest,
    CompareResponse,
    CompareResult,
    MeanVariant,
    PowerRequest,
    PowerResponse,
    RatioVariant,
    SrmRequest,
    SrmResponse,
)
from services.analyzer.stats import (
    DEFAULT_SRM_THRESHOLD,
    Comparison,
    Correction,
    EffectKind,
    GaussianPrior,
    Status,
    adjust_p_values,
    duration_days,
    sample_size,
    srm_check,
    tuning_parameter_from_plan,
)
from services.analyzer.stats.bayesian import BayesianEffect
from services.analyzer.stats.estimators import Statistic, bayesian_estimate, estimate
from services.analyzer.stats.sequential import confidence_sequence_from_estimate
from splitstream.errors import FieldError, InvalidRequest, field_errors
from splitstream.statistics import CovariateMoments, Proportion, RatioMoments, SampleMoments

CUPED_FIELDS = ("covariate_sum", "covariate_sum_squares", "sum_covariate_product")


@dataclass(frozen=True, slots=True)
class _Readout:
    """One treatment's frequentist estimate on the requested scale, with the numbers every method needs."""

    comparison: Comparison
    variance_reduction: float | None


def _variant_stats(request: CompareRequest) -> list[tuple[str, Statistic]]:
    """The variants as engine statistics; a variant that does not fit ``metric_type`` is a 422 naming its field."""
    model = VARIANT_MODELS[request.metric_type]
    parsed: list[tuple[str, Statistic]] = []
    errors: list[FieldError] = []
    for index, raw in enumerate(request.variants):
        try:
            variant = model.model_validate(raw)
        except ValidationError as error:
            errors += [FieldError(f"body.variants.{index}.{e.field}" if e.field != "body" else
                                  f"body.variants.{index}", e.reason) for e in field_errors(error.errors())]
            continue
        try:
            parsed.append((variant.name, _statistics(variant, request.cuped)))
        except ValueError as error:
            errors.append(FieldError(f"body.variants.{index}", str(error)))
    if errors:
        raise InvalidRequest("variant statistics do not fit metric_type", errors)
    return parsed


def _statistics(variant: BinomialVariant | MeanVariant | RatioVariant, cuped: bool) -> Statistic:
    if isinstance(variant, BinomialVariant):
        if cuped:
            raise ValueError("cuped needs a mean metric with covariate sums")
        return Proportion(variant.n, variant.conversions)
    if isinstance(variant, RatioVariant):
        if cuped:
            raise ValueError("cuped needs a mean metric with covariate sums")
        return RatioMoments(variant.n, variant.numerator_sum, variant.numerator_sum_squares, variant.denominator_sum,
                            variant.denominator_sum_squares, variant.numerator_denominator_sum)
    if not cuped:
        return SampleMoments(variant.n, variant.sum, variant.sum_squares)
    missing = [name for name in CUPED_FIELDS if getattr(variant, name) is None]
    if missing:
        raise ValueError(f"cuped needs {', '.join(missing)}")
    return CovariateMoments(variant.n, variant.sum, variant.sum_squares, *(getattr(variant, f) for f in CUPED_FIELDS))


def _mean(stats: Statistic) -> float | None:
    if stats.n == 0:
        return None
    if isinstance(stats, RatioMoments):
        return stats.numerator_sum / stats.denominator_sum if stats.denominator_sum else None
    return stats.outcome().mean if isinstance(stats, CovariateMoments) else stats.mean


def _frequentist(control: Statistic, treatment: Statistic, kind: EffectKind, alpha: float) -> _Readout:
    estimated = estimate(control, treatment, alpha)
    relative = kind is EffectKind.RELATIVE
    comparison = estimated.comparison.relative if relative else estimated.comparison.absolute
    reduction = estimated.variance_reduction_relative if relative else estimated.variance_reduction_absolute
    return _Readout(comparison, reduction)


def _bayesian(control: Statistic, treatment: Statistic, kind: EffectKind, alpha: float, prior: GaussianPrior | None
              ) -> BayesianEffect:
    both = bayesian_estimate(control, treatment, alpha, prior)
    return both.relative if kind is EffectKind.RELATIVE else both.absolute


def _result(name: str, control: Statistic, treatment: Statistic, request: CompareRequest) -> CompareResult:
    kind = EffectKind(request.difference)
    readout = _frequentist(control, treatment, kind, request.alpha)
    fields: dict[str, Any] = {
        "variant": name, "control_mean": _mean(control), "treatment_mean": _mean(treatment),
        "variance_reduction": readout.variance_reduction,
        "chance_to_win": None, "risk_control": None, "risk_treatment": None,
    }
    comparison = readout.comparison
    if request.method == "bayesian":
        prior = None if request.prior is None else GaussianPrior(request.prior.mean, request.prior.sd)
        posterior = _bayesian(control, treatment, kind, request.alpha, prior)
        fields |= {
            "effect": posterior.posterior_mean, "ci_lower": posterior.ci_lower, "ci_upper": posterior.ci_upper,
            "p_value": None, "chance_to_win": posterior.chance_to_win, "risk_control": posterior.risk_control,
            "risk_treatment": posterior.risk_treatment, "status": posterior.status.value, "reason": posterior.reason,
        }
    elif request.method == "sequential" and comparison.status is Status.OK:
        assert comparison.effect is not None and comparison.std_error is not None
        # Without a planned sample, the sequence is tuned to be tightest at the sample it is read at.
        tuning = request.sequential_tuning or tuning_parameter_from_plan(control.n, treatment.n)
        sequence = confidence_sequence_from_estimate(
            comparison.effect, comparison.std_error, control.n + treatment.n, request.alpha,
            tuning_parameter=tuning, kind=kind,
        )
        fields |= {"effect": sequence.effect, "ci_lower": sequence.ci_lower, "ci_upper": sequence.ci_upper,
                   "p_value": sequence.p_value, "status": sequence.status.value, "reason": sequence.reason}
    else:
        fields |= {"effect": comparison.effect, "ci_lower": comparison.ci_lower, "ci_upper": comparison.ci_upper,
                   "p_value": comparison.p_value, "status": comparison.status.value, "reason": comparison.reason}
    return CompareResult(**fields)


def compare_variants(request: CompareRequest) -> CompareResponse:
    variants = _variant_stats(request)
    (_, control), treatments = variants[0], variants[1:]
    return CompareResponse(results=[_result(name, control, treatment, request) for name, treatment in treatments])


def sample_ratio(request: SrmRequest) -> SrmResponse:
    threshold = request.threshold if request.threshold is not None else DEFAULT_SRM_THRESHOLD
    result = srm_check(request.counts, request.weights, threshold)
    return SrmResponse(chi_square=result.statistic, p_value=result.p_value, mismatch=result.status is Status.MISMATCH,
                       threshold=threshold)


def adjust(request: AdjustRequest) -> AdjustResponse:
    correction = Correction.HOLM if request.method == "holm" else Correction.BENJAMINI_HOCHBERG
    adjusted = adjust_p_values(request.p_values, correction)
    return AdjustResponse(adjusted=[float(p) for p in adjusted.adjusted if p is not None])


def power(request: PowerRequest) -> PowerResponse:
    plan = sample_size(request.baseline_rate, request.relative_mde, request.alpha, request.power, request.variants)
    days = None if request.daily_users is None else duration_days(
        plan.users_per_variant, request.variants, request.daily_users
    )
    return PowerResponse(users_per_variant=plan.users_per_variant, days=days)
