"""Wire models of the results API. Numbers are finite or null: NaN and ±inf never reach the JSON."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from services.analyzer.stats import Comparison, SrmResult
from splitstream.experiment import (
    AnalysisMethod,
    Difference,
    ExperimentStatus,
    MetricRole,
    MetricType,
    PValueCorrection,
)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


Number = Annotated[float | None, BeforeValidator(_finite_or_none)]
"""A float that is null where the value is undefined; ``status`` and ``reason`` next to it say why."""

STATUS_DESCRIPTION = (
    "ok | undefined (no such quantity or valid test for this data) | insufficient_data (too few users) | "
    "invalid_data (the stored statistics are inconsistent)"
)


class EffectOut(BaseModel):
    effect: Number
    ci_lower: Number
    ci_upper: Number
    p_value: Number
    std_error: Number
    statistic: Number = Field(description="t or z statistic of the test")
    dof: Number = Field(description="degrees of freedom of a t test")
    method: str = Field(
        description="welch_t | pooled_z | fisher_exact | confidence_sequence | gaussian_posterior | group_sequential"
    )
    status: str = Field(description=STATUS_DESCRIPTION)
    reason: str | None

    @classmethod
    def of(cls, comparison: Comparison) -> EffectOut:
        return cls(**_effect_fields(comparison))


def _effect_fields(comparison: Comparison) -> dict[str, Any]:
    return {
        "effect": comparison.effect,
        "ci_lower": comparison.ci_lower,
        "ci_upper": comparison.ci_upper,
        "p_value": comparison.p_value,
        "std_error": comparison.std_error,
        "statistic": comparison.statistic,
        "dof": comparison.dof,
        "method": comparison.method.value,
        "status": comparison.status.value,
        "reason": comparison.reason,
    }


class ComparisonOut(EffectOut):
    """``variant`` against ``baseline`` (the control), read by the experiment's analysis method: the headline fields
    on the ``difference`` scale of the results (the relative lift m_t/m_c − 1 unless ``?difference=absolute``), and
    each scale in full under ``relative`` and ``absolute``."""

    variant: str
    baseline: str
    adjusted_p_value: Number = Field(None, description="p_value adjusted across every metric × treatment")
    chance_to_win: Number = Field(None, description="Bayesian: P(lift > 0)")
    risk_control: Number = Field(None, description="Bayesian: expected loss of keeping the control, E[max(Δ,0)]")
    risk_treatment: Number = Field(None, description="Bayesian: expected loss of shipping, E[max(−Δ,0)]")
    look: int | None = Field(None, description="group sequential: the recorded look this comparison is tested at")
    information_fraction: Number = Field(None, description="group sequential: t of that look, min(users)/planned")
    boundary: Number = Field(
        None, description="group sequential: the O'Brien–Fleming efficacy boundary c_k on the z scale (null when no "
                          "alpha is left); the interval is the repeated CI effect ± c_k·std_error",
    )
    alpha_spent: Number = Field(None, description="group sequential: cumulative alpha spent up to that look")
    reject: bool | None = Field(None, description="group sequential: |z| ≥ boundary at that look (H0 rejected)")
    variance_reduction: Number = Field(
        None, description="CUPED: 1 − Var_adjusted(Δ)/Var_unadjusted(Δ) on the headline scale (0.3 = 30% less "
                          "variance, the power of 1/0.7 times the users)",
    )
    relative: EffectOut
    absolute: EffectOut

    @classmethod
    def of_pair(
        cls, variant: str, baseline: str, relative: Comparison, absolute: Comparison, *,
        headline_absolute: bool = False, **extras: float | int | bool | None,
    ) -> ComparisonOut:
        """The headline fields are the relative comparison's, or the absolute one's with ``headline_absolute``;
        both scales are also given in full under ``relative`` and ``absolute``."""
        headline = absolute if headline_absolute else relative
        return cls(
            variant=variant, baseline=baseline, relative=EffectOut.of(relative), absolute=EffectOut.of(absolute),
            **_effect_fields(headline), **extras,
        )


class MetricVariantOut(BaseModel):
    key: str
    n: int = Field(description="exposed users")
    sum: Number = Field(description="binomial: converted users; mean: Σ of the per-user totals; ratio: Σ numerator")
    mean: Number = Field(description="the conversion rate, the mean per user, or the ratio Σm/Σd (unadjusted)")
    variance: Number = Field(description="per-user variance: p(1 − p) for binomial, (Σy² − (Σy)²/n)/(n − 1) for "
                                         "mean, the delta-method v_R for ratio")
    denominator_sum: Number = Field(None, description="ratio: Σ denominator")
    covariate_mean: Number = Field(None, description="CUPED: the mean pre-exposure value of the metric")


class MetricResultsOut(BaseModel):
    key: str
    type: MetricType
    event: str
    denominator_event: str | None = None
    role: MetricRole
    cuped: bool = Field(False, description="the comparisons are CUPED-adjusted with the pre-exposure covariate")
    variants: list[MetricVariantOut]
    comparisons: list[ComparisonOut]


class VariantOut(BaseModel):
    key: str
    users: int
    weight: float


class SrmOut(BaseModel):
    p_value: Number
    statistic: Number
    dof: int | None
    status: str = Field(description="ok | mismatch | insufficient_data")
    reason: str | None

    @classmethod
    def of(cls, result: SrmResult) -> SrmOut:
        return cls(
            p_value=result.p_value,
            statistic=result.statistic,
            dof=result.dof,
            status=result.status.value,
            reason=result.reason,
        )


class DecisionOut(BaseModel):
    variant: str
    verdict: str = Field(description="ship | roll_back | keep_running | proved_neutral | invalid")
    reasons: list[str]


class LookOut(BaseModel):
    look: int = Field(description="ordinal of the recorded look")
    information_fraction: float = Field(description="t = (users of the smallest variant) / planned users per variant")
    users: dict[str, int] = Field(description="exposed users per variant at the look")
    recorded_at: datetime


class HoldoutResults(BaseModel):
    """Each variant and ``(all variants)`` pooled against the experiment's held-out users (``(holdout)``): the
    campaign's total effect. ``metrics`` list the arms ``(holdout)`` first, then the variants, then the pool."""

    holdouts: list[str] = Field(description="the holdouts that apply to the experiment (global or attached)")
    expected_share: float = Field(description="q = 1 − Π(1 − share): the share of eligible users held out")
    users: int = Field(description="held-out users counted (they would otherwise have been in the experiment)")
    srm: SrmOut | None = Field(description="held-out against treated users, expected q : 1 − q (null without a "
                                           "holdout that applies)")
    metrics: list[MetricResultsOut]


class ExperimentResults(BaseModel):
    experiment: str
    status: ExperimentStatus
    phase: int = Field(description="the phase read: each new phase starts its statistics from zero")
    alpha: float
    method: AnalysisMethod
    difference: Difference = Field(
        Difference.RELATIVE, description="the scale of every comparison's headline effect, CI and p-values"
    )
    correction: PValueCorrection
    variants: list[VariantOut]
    srm: SrmOut
    metrics: list[MetricResultsOut]
    decisions: list[DecisionOut] = Field(description="one per treatment when the experiment declares a goal metric")
    looks: list[LookOut] = Field(
        default_factory=list, description="group sequential: the looks recorded so far, oldest first (else empty)"
    )
    holdout: HoldoutResults | None = Field(
        None, description="against the held-out users, when a holdout applies or held-out users were counted"
    )


class ExperimentSummary(BaseModel):
    """One line of ``GET /v1/experiments``: where an experiment stands."""

    experiment: str
    status: ExperimentStatus
    phase: int
    method: AnalysisMethod
    users: dict[str, int] = Field(description="exposed users per variant, control first")
    srm_status: str
    decisions: list[DecisionOut]

    @classmethod
    def of(cls, results: ExperimentResults) -> ExperimentSummary:
        return cls(
            experiment=results.experiment, status=results.status, phase=results.phase, method=results.method,
            users={variant.key: variant.users for variant in results.variants}, srm_status=results.srm.status,
            decisions=results.decisions,
        )


class ExperimentSummaries(BaseModel):
    experiments: list[ExperimentSummary]


class PointComparison(BaseModel):
    variant: str
    effect: Number = Field(description="cumulative relative lift against the control at this point")
    ci_lower: Number
    ci_upper: Number
    p_value: Number
    status: str = Field(description=STATUS_DESCRIPTION)

    @classmethod
    def of(cls, variant: str, comparison: Comparison) -> PointComparison:
        return cls(
            variant=variant, effect=comparison.effect, ci_lower=comparison.ci_lower, ci_upper=comparison.ci_upper,
            p_value=comparison.p_value, status=comparison.status.value,
        )


class PointMetric(BaseModel):
    key: str
    comparisons: list[PointComparison]


class HoldoutPoint(BaseModel):
    users: int = Field(description="held-out users counted by then")
    metrics: list[PointMetric] = Field(description="each variant and (all variants) against the held-out users")


class TimeseriesPoint(BaseModel):
    at: datetime
    users: dict[str, int]
    metrics: list[PointMetric]
    holdout: HoldoutPoint | None = Field(None, description="against the held-out users; null before any is counted")


class Timeseries(BaseModel):
    experiment: str
    phase: int
    method: AnalysisMethod = Field(description="the plan's method; group_sequential points are read fixed-horizon")
    alpha: float
    points: list[TimeseriesPoint] = Field(description="one per snapshot of the current phase, oldest first")


class SegmentOut(BaseModel):
    value: str = Field(description="the dimension's value; (other) gathers the values beyond the largest ones")
    variants: list[VariantOut]
    srm: SrmOut
    metrics: list[MetricResultsOut]


class SegmentResults(BaseModel):
    """``?segment=<dimension>``: the results within each value of the dimension, largest first."""

    experiment: str
    phase: int
    dimension: str
    alpha: float
    method: AnalysisMethod = Field(description="group_sequential plans are read fixed-horizon within segments")
    correction: PValueCorrection = Field(
        description="adjusted_p_value is adjusted across every segment × metric × treatment of this answer"
    )
    segments: list[SegmentOut]
