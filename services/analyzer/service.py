"""Results of an experiment: its definition and stored sufficient statistics, run through the stats engine."""

from __future__ import annotations

import math
from collections.abc import Iterator

from pydantic import TypeAdapter, ValidationError

from services.analyzer.adapters.variant_stats import VariantStatsReader, VariantTotals
from services.analyzer.schemas import (
    ComparisonOut,
    EffectOut,
    ExperimentResults,
    MetricResultsOut,
    MetricVariantOut,
    SrmOut,
    VariantOut,
)
from services.analyzer.stats import Arm, TreatmentComparison, srm_check, validate_alpha
from services.analyzer.stats.batch import compare_batch
from splitstream.errors import FieldError, NotFound
from splitstream.experiment import Experiment, Key, Metric, MetricType
from splitstream.registry import ExperimentRegistry
from splitstream.statistics import Proportion, SampleMoments

_KEY = TypeAdapter(Key)
INVALID_DATA = "invalid_data"


def arm_of(metric: Metric, totals: VariantTotals) -> Arm | str:
    """The metric's sufficient statistic in one variant, or why the stored numbers cannot be one."""
    total, squares = totals.sum(metric.key), totals.sum_squares(metric.key)
    if not (math.isfinite(total) and math.isfinite(squares)):
        return f"the stored sums of {metric.key!r} are not finite"
    if -1e-9 * (1.0 + abs(squares) + total * total) < squares < 0:
        # Σy² is folded as a running sum of new² − old² deltas, which can round a hair below zero.
        squares = 0.0
    try:
        if metric.type is MetricType.BINOMIAL:
            return Proportion(n=totals.users, conversions=int(total))
        return SampleMoments(n=totals.users, sum=total, sum_squares=squares)
    except ValueError as error:
        return f"the stored statistics are inconsistent: {error}"


def _variant_summary(key: str, totals: VariantTotals, metric: Metric, arm: Arm | str) -> MetricVariantOut:
    if isinstance(arm, str):
        return MetricVariantOut(key=key, n=totals.users, sum=totals.sum(metric.key), mean=None, variance=None)
    total = float(arm.conversions) if isinstance(arm, Proportion) else arm.sum
    return MetricVariantOut(key=key, n=arm.n, sum=total, mean=arm.mean, variance=arm.variance)


def _invalid(variant: str, baseline: str, reason: str) -> ComparisonOut:
    nothing = EffectOut(
        effect=None, ci_lower=None, ci_upper=None, p_value=None, std_error=None, statistic=None, dof=None,
        method="welch_t", status=INVALID_DATA, reason=reason,
    )
    return ComparisonOut(variant=variant, baseline=baseline, absolute=nothing, **nothing.model_dump())


def metric_results(
    experiment: Experiment, metric: Metric, totals: dict[str, VariantTotals], computed: Iterator[TreatmentComparison]
) -> MetricResultsOut:
    """``computed`` yields, in variant order, the comparisons of the pairs ``comparable_pairs`` returned."""
    keys = experiment.variant_keys()
    arms = {key: arm_of(metric, totals[key]) for key in keys}
    control_key = keys[0]
    control = arms[control_key]
    comparisons = []
    for key in keys[1:]:
        treatment = arms[key]
        if isinstance(control, str) or isinstance(treatment, str):
            broken = control_key if isinstance(control, str) else key
            comparisons.append(_invalid(key, control_key, f"variant {broken!r}: {arms[broken]}"))
            continue
        result = next(computed)
        comparisons.append(ComparisonOut.of_pair(key, control_key, result.relative, result.absolute))
    return MetricResultsOut(
        key=metric.key,
        type=metric.type,
        event=metric.event,
        variants=[_variant_summary(key, totals[key], metric, arms[key]) for key in keys],
        comparisons=comparisons,
    )


def comparable_pairs(experiment: Experiment, totals: dict[str, VariantTotals]) -> list[tuple[Arm, Arm]]:
    """Every (control, treatment) pair of every metric whose stored statistics are consistent, in readout order."""
    keys = experiment.variant_keys()
    pairs: list[tuple[Arm, Arm]] = []
    for metric in experiment.metrics:
        control = arm_of(metric, totals[keys[0]])
        for key in keys[1:]:
            treatment = arm_of(metric, totals[key])
            if not isinstance(control, str) and not isinstance(treatment, str):
                pairs.append((control, treatment))
    return pairs


class ResultsService:
    def __init__(
        self, registry: ExperimentRegistry, stats: VariantStatsReader, *, default_alpha: float, srm_threshold: float
    ) -> None:
        validate_alpha(default_alpha)
        self._registry = registry
        self._stats = stats
        self._default_alpha = default_alpha
        self._srm_threshold = srm_threshold

    async def results(self, key: str, alpha: float | None = None) -> ExperimentResults:
        """Every treatment against the control (variants[0]) on every metric, and the sample-ratio check."""
        alpha = self._default_alpha if alpha is None else alpha
        validate_alpha(alpha)
        experiment = await self._experiment(key)
        totals = await self._stats.read(experiment.key, experiment.variant_keys())
        users = [totals[v.key].users for v in experiment.variants]
        if any(count < 0 for count in users):
            srm = SrmOut(p_value=None, statistic=None, dof=None, status=INVALID_DATA,
                         reason="a variant's stored user count is negative")
        else:
            srm = SrmOut.of(srm_check(users, experiment.weights, self._srm_threshold))
        # One vectorised pass over every metric × treatment; degenerate pairs fall back to the scalar engine.
        computed = iter(compare_batch(comparable_pairs(experiment, totals), alpha))
        return ExperimentResults(
            experiment=experiment.key,
            status=experiment.status,
            alpha=alpha,
            variants=[VariantOut(key=v.key, users=totals[v.key].users, weight=v.weight) for v in experiment.variants],
            srm=srm,
            metrics=[metric_results(experiment, metric, totals, computed) for metric in experiment.metrics],
        )

    async def _experiment(self, key: str) -> Experiment:
        missing = NotFound(f"no experiment {key!r}", [FieldError("key", "no experiment with this key")])
        try:
            _KEY.validate_python(key)
        except ValidationError:
            # A key outside the allowed pattern was never stored; it must not reach Redis key names either.
            raise missing from None
        experiment = await self._registry.get(key)
        if experiment is None:
            raise missing
        return experiment
