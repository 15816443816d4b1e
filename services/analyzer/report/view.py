"""What the report shows, gathered from the analyzer's answers: the call per treatment, the harmed guardrails, and
the data the charts are drawn from. Pure: the routes fetch the answers, the pages render this."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.analyzer.alerts import alerts_for
from services.analyzer.report.labels import label
from services.analyzer.report.verdict import Call, Interval, Lang
from services.analyzer.schemas import (
    ComparisonOut,
    DecisionOut,
    ExperimentResults,
    MetricResultsOut,
    SegmentResults,
    Timeseries,
)
from services.analyzer.stats.decision import Verdict
from splitstream.experiment import AnalysisMethod, Experiment

GUARDRAIL_CAUSE = "guardrail"


@dataclass(frozen=True, slots=True)
class Harm:
    """A guardrail that a treatment harms beyond its margin (the alerts' rule, services/analyzer/alerts.py)."""

    metric: str
    variant: str
    effect: float
    ci_lower: float
    ci_upper: float
    margin: float


@dataclass(frozen=True, slots=True)
class ReportView:
    experiment: Experiment
    results: ExperimentResults
    timeseries: Timeseries
    segments: list[SegmentResults]
    calls: list[Call]
    harms: list[Harm]

    @property
    def srm_mismatch(self) -> bool:
        return self.results.srm.status == "mismatch"

    @property
    def chart_metric(self) -> str | None:
        """The metric the charts open on: the goal, else the first."""
        goal = self.experiment.goal
        if goal is not None:
            return goal.key
        return self.experiment.metrics[0].key if self.experiment.metrics else None


def comparison_of(metric: MetricResultsOut, variant: str) -> ComparisonOut | None:
    return next((comparison for comparison in metric.comparisons if comparison.variant == variant), None)


def metric_of(results: ExperimentResults, key: str) -> MetricResultsOut | None:
    return next((metric for metric in results.metrics if metric.key == key), None)


def harms_of(experiment: Experiment, results: ExperimentResults) -> list[Harm]:
    """Every guardrail harmed beyond its margin, as the alerts find them (after the plan's minimum users)."""
    margins = {metric.key: metric.margin for metric in experiment.metrics}
    harms = []
    for alert in alerts_for(experiment, results, stop_on_harm=False):
        cause, _, rest = alert.cause.partition(":")
        if cause != GUARDRAIL_CAUSE:
            continue
        metric_key, _, variant = rest.partition(":")  # keys cannot hold a colon (splitstream.experiment.Key)
        metric = metric_of(results, metric_key)
        comparison = None if metric is None else comparison_of(metric, variant)
        if comparison is None or comparison.effect is None or comparison.ci_lower is None \
                or comparison.ci_upper is None:
            continue
        harms.append(Harm(metric_key, variant, comparison.effect, comparison.ci_lower, comparison.ci_upper,
                          margins.get(metric_key, 0.0)))
    return harms


def _waiting(experiment: Experiment, results: ExperimentResults, variant: str, now: datetime) -> bool:
    """The plan's minimum users (control and this treatment) or days are not reached: the decision's first rule."""
    users = {v.key: v.users for v in results.variants}
    fewest = min(users.get(experiment.variant_keys()[0], 0), users.get(variant, 0))
    since = experiment.running_since
    days = 0.0 if since is None else (now - since).total_seconds() / 86400
    plan = experiment.analysis
    return fewest < plan.min_users_per_variant or days < plan.min_days


def call_of(
    experiment: Experiment, results: ExperimentResults, decision: DecisionOut, harms: list[Harm], now: datetime
) -> Call | None:
    """The call of one decision on the goal metric; None without a goal or a verdict this report knows."""
    goal = experiment.goal
    try:
        verdict = Verdict(decision.verdict)
    except ValueError:
        return None
    metric = None if goal is None else metric_of(results, goal.key)
    if goal is None or metric is None:
        return None
    comparison = comparison_of(metric, decision.variant)
    return Call(
        variant=decision.variant, verdict=verdict, metric=goal.key,
        effect=None if comparison is None else comparison.effect,
        ci_lower=None if comparison is None else comparison.ci_lower,
        ci_upper=None if comparison is None else comparison.ci_upper,
        confidence=1 - results.alpha,
        interval=Interval.CREDIBLE if results.method is AnalysisMethod.BAYESIAN else Interval.CONFIDENCE,
        higher_is_better=goal.higher_is_better,
        harmed_guardrails=tuple(harm.metric for harm in harms if harm.variant == decision.variant),
        waiting=verdict is Verdict.KEEP_RUNNING and _waiting(experiment, results, decision.variant, now),
        equivalence_margin=experiment.analysis.equivalence_margin,
        chance_to_win=None if comparison is None else comparison.chance_to_win,
    )


def build_view(
    experiment: Experiment, results: ExperimentResults, timeseries: Timeseries, segments: list[SegmentResults],
    now: datetime,
) -> ReportView:
    harms = harms_of(experiment, results)
    calls = [call for decision in results.decisions
             if (call := call_of(experiment, results, decision, harms, now)) is not None]
    return ReportView(experiment, results, timeseries, segments, calls, harms)


def chart_data(view: ReportView, lang: Lang) -> dict[str, Any]:
    """What static/report.js draws from, embedded in the page as JSON."""
    experiment, results = view.experiment, view.results
    roles = {metric.key: metric for metric in experiment.metrics}
    return {
        "lang": lang.value,
        "labels": {
            name: label(name, lang).replace("{key}", experiment.key)
            for name in ("forest_title", "cumulative_title", "users_title", "plan", "no_effect", "no_comparisons",
                         "no_snapshots", "all_vs_holdout")
        },
        "experiment": experiment.key,
        "alpha": results.alpha,
        "variants": experiment.variant_keys(),
        "chart_metric": view.chart_metric,
        "planned_users_per_variant": experiment.analysis.planned_users_per_variant,
        "metrics": [
            {
                "key": metric.key,
                "role": metric.role.value,
                "higher_is_better": roles[metric.key].higher_is_better if metric.key in roles else True,
                "comparisons": [
                    {"variant": c.variant, "effect": c.effect, "ci_lower": c.ci_lower, "ci_upper": c.ci_upper}
                    for c in metric.comparisons
                ],
            }
            for metric in results.metrics
        ],
        "points": view.timeseries.model_dump(mode="json")["points"],
    }
