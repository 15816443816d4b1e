"""How an experiment's analysis plan turns its fixed-horizon comparisons into the readout: the method it is read
by, the multiple-testing correction across every metric × treatment, and the call for each treatment."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.analyzer.stats import (
    Comparison,
    Correction,
    Decision,
    DecisionPolicy,
    EffectKind,
    Method,
    MetricReading,
    SrmResult,
    Status,
    TreatmentComparison,
    adjust_p_values,
    decide,
    equivalence_test,
    tuning_parameter_from_plan,
)
from services.analyzer.stats.bayesian import BayesianEffect
from services.analyzer.stats.estimators import Statistic, bayesian_estimate
from services.analyzer.stats.sequential import GroupSequentialResult, confidence_sequence_from_estimate
from splitstream.experiment import AnalysisMethod, AnalysisPlan, Difference, Experiment, MetricRole, PValueCorrection

_CORRECTIONS = {PValueCorrection.HOLM: Correction.HOLM, PValueCorrection.BH: Correction.BENJAMINI_HOCHBERG}


@dataclass(frozen=True, slots=True)
class Reading:
    """One treatment against the control on one metric, read by the plan's method."""

    relative: Comparison
    absolute: Comparison
    chance_to_win: float | None = None
    risk_control: float | None = None
    risk_treatment: float | None = None
    group_sequential: GroupSequentialResult | None = None
    """Group sequential: the relative comparison's test at the latest recorded look (services/analyzer/looks.py)."""


def _sequential(comparison: Comparison, total_users: int, tuning: float, alpha: float) -> Comparison:
    if comparison.status is not Status.OK or comparison.effect is None or comparison.std_error is None:
        return comparison
    sequence = confidence_sequence_from_estimate(
        comparison.effect, comparison.std_error, total_users, alpha, tuning_parameter=tuning, kind=comparison.kind
    )
    return dataclasses.replace(
        comparison, method=Method.CONFIDENCE_SEQUENCE, status=sequence.status, reason=sequence.reason,
        ci_lower=sequence.ci_lower, ci_upper=sequence.ci_upper, p_value=sequence.p_value, dof=None,
    )


def _posterior(effect: BayesianEffect) -> Comparison:
    return Comparison(
        kind=effect.kind, method=Method.GAUSSIAN_POSTERIOR, status=effect.status, reason=effect.reason,
        effect=effect.posterior_mean, ci_lower=effect.ci_lower, ci_upper=effect.ci_upper,
        std_error=effect.posterior_sd,
    )


def read_pair(
    plan: AnalysisPlan, control: Statistic, treatment: Statistic, fixed: TreatmentComparison, alpha: float
) -> Reading:
    """The fixed-horizon comparison re-read by ``plan.method`` (sequential: N* is twice the planned users per
    variant, or the current sample when no plan was given; Bayesian: flat prior). Group sequential reads the
    recorded looks instead of the current data (``looks.read_at_latest_look``), so it never comes here."""
    if plan.method is AnalysisMethod.SEQUENTIAL:
        total = control.n + treatment.n
        tuning = (2.0 * plan.planned_users_per_variant if plan.planned_users_per_variant
                  else tuning_parameter_from_plan(max(control.n, 1), max(treatment.n, 1)))
        return Reading(
            _sequential(fixed.relative, total, tuning, alpha), _sequential(fixed.absolute, total, tuning, alpha)
        )
    if plan.method is AnalysisMethod.BAYESIAN:
        posterior = bayesian_estimate(control, treatment, alpha)
        return Reading(
            _posterior(posterior.relative), _posterior(posterior.absolute),
            chance_to_win=posterior.relative.chance_to_win, risk_control=posterior.relative.risk_control,
            risk_treatment=posterior.relative.risk_treatment,
        )
    return Reading(fixed.relative, fixed.absolute)


def adjusted_p_values(
    readings: Sequence[Reading], correction: PValueCorrection, alpha: float, difference: Difference
) -> list[float | None]:
    """The p-values on the ``difference`` scale adjusted as one family (None where a reading has no p-value)."""
    absolute = difference is Difference.ABSOLUTE
    raw = [(reading.absolute if absolute else reading.relative).p_value for reading in readings]
    return adjust_family(raw, correction, alpha)


def adjust_family(raw: Sequence[float | None], correction: PValueCorrection, alpha: float) -> list[float | None]:
    """``raw`` p-values adjusted as one family; None stays None."""
    if correction is PValueCorrection.NONE or not any(p is not None for p in raw):
        return list(raw)
    return list(adjust_p_values(raw, _CORRECTIONS[correction], alpha).adjusted)


def decide_variant(
    experiment: Experiment,
    readings: dict[str, Reading],
    fixed: dict[str, TreatmentComparison],
    srm: SrmResult,
    users: Sequence[int],
    now: datetime,
    alpha: float,
) -> Decision | None:
    """The call for one treatment from its ``readings`` per metric key; None when no goal metric is declared."""
    goal = experiment.goal
    if goal is None or goal.key not in readings:
        return None
    plan = experiment.analysis
    equivalent = None
    goal_fixed = fixed[goal.key].relative
    if plan.equivalence_margin is not None and goal_fixed.status is Status.OK:
        assert goal_fixed.effect is not None and goal_fixed.std_error is not None
        equivalent = equivalence_test(goal_fixed.effect, goal_fixed.std_error, plan.equivalence_margin, alpha,
                                      goal_fixed.dof, EffectKind.RELATIVE).equivalent
    guardrails = [
        MetricReading(metric.key, readings[metric.key].relative, metric.higher_is_better, metric.margin)
        for metric in experiment.metrics if metric.role is MetricRole.GUARDRAIL and metric.key in readings
    ]
    since = experiment.running_since
    days = 0.0 if since is None else max(0.0, (now - since).total_seconds() / 86400)
    return decide(
        MetricReading(goal.key, readings[goal.key].relative, goal.higher_is_better, equivalent=equivalent),
        guardrails, srm, users_per_variant=users, days_running=days,
        policy=DecisionPolicy(plan.min_users_per_variant, plan.min_days),
    )
