"""Results of an experiment: its definition and stored sufficient statistics, run through the stats engine."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from services.analyzer.adapters.looks import LookLog
from services.analyzer.adapters.variant_stats import VariantStatsReader, VariantTotals
from services.analyzer.looks import (
    Cell,
    LookRecord,
    build_look,
    due_threshold,
    goal_rejected,
    read_at_latest_look,
    waiting_reading,
)
from services.analyzer.reading import Reading, adjusted_p_values, decide_variant, read_pair
from services.analyzer.schemas import (
    ComparisonOut,
    DecisionOut,
    EffectOut,
    ExperimentResults,
    ExperimentSummary,
    LookOut,
    MetricResultsOut,
    MetricVariantOut,
    SegmentResults,
    SrmOut,
    VariantOut,
)
from services.analyzer.stats import Arm, SrmResult, TreatmentComparison, srm_check, validate_alpha
from services.analyzer.stats.batch import compare_batch
from splitstream.errors import FieldError, InvalidRequest, NotFound
from splitstream.experiment import AnalysisMethod, Experiment, Key, Metric, MetricType
from splitstream.keys import stats_scope
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


@dataclass(frozen=True, slots=True)
class _Pair:
    control: Arm
    treatment: Arm
    fixed: TreatmentComparison


@dataclass(frozen=True, slots=True)
class _CellReading:
    reading: Reading
    fixed: TreatmentComparison
    adjusted_p_value: float | None


def metric_results(
    experiment: Experiment, metric: Metric, totals: dict[str, VariantTotals], cells: dict[Cell, _CellReading]
) -> MetricResultsOut:
    keys = experiment.variant_keys()
    arms = {key: arm_of(metric, totals[key]) for key in keys}
    control_key = keys[0]
    comparisons = []
    for key in keys[1:]:
        cell = cells.get((metric.key, key))
        if cell is None:
            broken = control_key if isinstance(arms[control_key], str) else key
            comparisons.append(_invalid(key, control_key, f"variant {broken!r}: {arms[broken]}"))
            continue
        reading = cell.reading
        look = reading.group_sequential
        comparisons.append(ComparisonOut.of_pair(
            key, control_key, reading.relative, reading.absolute, adjusted_p_value=cell.adjusted_p_value,
            chance_to_win=reading.chance_to_win, risk_control=reading.risk_control,
            risk_treatment=reading.risk_treatment,
            look=None if look is None else look.look,
            information_fraction=None if look is None else look.information_fraction,
            boundary=None if look is None else look.boundary,
            alpha_spent=None if look is None else look.alpha_spent,
            reject=None if look is None else look.reject,
        ))
    return MetricResultsOut(
        key=metric.key,
        type=metric.type,
        event=metric.event,
        role=metric.role,
        variants=[_variant_summary(key, totals[key], metric, arms[key]) for key in keys],
        comparisons=comparisons,
    )


def compare_cells(experiment: Experiment, totals: dict[str, VariantTotals], alpha: float) -> dict[Cell, _Pair]:
    """The fixed-horizon comparison of every metric × treatment whose statistics are consistent, in one vectorised
    pass (degenerate pairs fall back to the scalar engine)."""
    keys = experiment.variant_keys()
    cells: list[Cell] = []
    pairs: list[tuple[Arm, Arm]] = []
    for metric in experiment.metrics:
        control = arm_of(metric, totals[keys[0]])
        for key in keys[1:]:
            treatment = arm_of(metric, totals[key])
            if not isinstance(control, str) and not isinstance(treatment, str):
                cells.append((metric.key, key))
                pairs.append((control, treatment))
    fixed = compare_batch(pairs, alpha)
    return {cell: _Pair(c, t, f) for cell, (c, t), f in zip(cells, pairs, fixed, strict=True)}


def read_cells(
    experiment: Experiment, pairs: dict[Cell, _Pair], alpha: float, looks: Sequence[LookRecord] = (),
    smallest_variant_users: int = 0,
) -> dict[Cell, _CellReading]:
    """Every compared cell read by the plan's method (group sequential: at the latest of ``looks``), with p-values
    adjusted as one family."""
    plan = experiment.analysis
    if plan.method is not AnalysisMethod.GROUP_SEQUENTIAL:
        readings = [read_pair(plan, pair.control, pair.treatment, pair.fixed, alpha) for pair in pairs.values()]
    elif looks:
        readings = [read_at_latest_look(looks, metric, variant, alpha) for metric, variant in pairs]
    else:
        readings = [waiting_reading(plan, smallest_variant_users)] * len(pairs)
    adjusted = adjusted_p_values(readings, plan.correction, alpha)
    return {
        cell: _CellReading(reading, pair.fixed, p)
        for (cell, pair), reading, p in zip(pairs.items(), readings, adjusted, strict=True)
    }


def _decisions(
    experiment: Experiment, cells: dict[Cell, _CellReading], srm: SrmResult | None, users: list[int], alpha: float,
    now: datetime,
) -> list[DecisionOut]:
    if srm is None:
        return []
    decisions = []
    for key in experiment.variant_keys()[1:]:
        mine = {metric: cell for (metric, variant), cell in cells.items() if variant == key}
        decision = decide_variant(
            experiment, {m: c.reading for m, c in mine.items()}, {m: c.fixed for m, c in mine.items()},
            srm, [users[0], users[experiment.variant_keys().index(key)]], now, alpha,
        )
        if decision is not None:
            decisions.append(DecisionOut(variant=key, verdict=decision.verdict.value, reasons=decision.reasons))
    return decisions


class ResultsService:
    def __init__(
        self, registry: ExperimentRegistry, stats: VariantStatsReader, looks: LookLog, *, srm_threshold: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registry = registry
        self._stats = stats
        self._looks = looks
        self._srm_threshold = srm_threshold
        self._clock = clock

    async def results(
        self, key: str, alpha: float | None = None, method: AnalysisMethod | None = None
    ) -> ExperimentResults:
        """Every treatment against the control (variants[0]) on every metric, read as the experiment's analysis
        plan says (or by ``method``), the sample-ratio check, and the call for each treatment when a goal metric
        is declared. A group-sequential plan is read at its latest recorded look; this request records the next
        look when due."""
        experiment = await self.experiment_for_reading(key, method)
        alpha = experiment.analysis.alpha if alpha is None else alpha
        validate_alpha(alpha)
        totals = await self._stats.read(stats_scope(experiment.key, experiment.phase), experiment.variant_keys())
        users = [totals[v.key].users for v in experiment.variants]
        srm, srm_result = sample_ratio(experiment, users, self._srm_threshold)
        pairs = compare_cells(experiment, totals, alpha)
        looks: list[LookRecord] = []
        if experiment.analysis.method is AnalysisMethod.GROUP_SEQUENTIAL:
            looks = await self._take_look(experiment, {v.key: totals[v.key].users for v in experiment.variants}, pairs)
        cells = read_cells(experiment, pairs, alpha, looks, min(users))
        return ExperimentResults(
            experiment=experiment.key,
            status=experiment.status,
            phase=experiment.phase,
            alpha=alpha,
            method=experiment.analysis.method,
            correction=experiment.analysis.correction,
            variants=[VariantOut(key=v.key, users=totals[v.key].users, weight=v.weight) for v in experiment.variants],
            srm=srm,
            metrics=[metric_results(experiment, metric, totals, cells) for metric in experiment.metrics],
            decisions=_decisions(experiment, cells, srm_result, users, alpha, self._clock()),
            looks=[LookOut(look=r.look, information_fraction=r.information_fraction, users=r.users,
                           recorded_at=r.recorded_at) for r in looks],
        )

    async def _take_look(
        self, experiment: Experiment, users: dict[str, int], pairs: dict[Cell, _Pair]
    ) -> list[LookRecord]:
        """The recorded looks, after recording a new one if a scheduled threshold was crossed since the last look
        and the test is not over (see services/analyzer/looks.py). Stopping follows the plan's alpha: the looks
        belong to the experiment, whatever alpha a reader asks for."""
        plan = experiment.analysis
        scope = stats_scope(experiment.key, experiment.phase)
        recorded = await self._looks.read(scope)
        goal = experiment.goal
        if goal_rejected(recorded, None if goal is None else goal.key, plan.alpha):
            return recorded
        threshold = due_threshold(recorded, users, plan)
        if threshold is None:
            return recorded
        fixed = {cell: pair.fixed for cell, pair in pairs.items()}
        record = build_look(recorded, users, plan, threshold, fixed, self._clock())
        if await self._looks.append(scope, record):
            return [*recorded, record]
        # Another request recorded this look first: report its record, not ours.
        return await self._looks.read(scope)

    async def experiment_for_reading(self, key: str, method: AnalysisMethod | None = None) -> Experiment:
        """The stored experiment, as read by ``method`` when one is asked for (404 for an unknown key)."""
        experiment = await self._experiment(key)
        if method is not None and method is not experiment.analysis.method:
            experiment = _read_by(experiment, method)
        return experiment

    async def segments(
        self, key: str, dimension: str, alpha: float | None = None, method: AnalysisMethod | None = None
    ) -> SegmentResults:
        # Imported here: the segment module builds on this one's readers.
        from services.analyzer.segments import segment_results

        experiment = await self.experiment_for_reading(key, method)
        return await segment_results(experiment, dimension, self._stats, alpha, self._srm_threshold)

    async def summaries(self) -> list[ExperimentSummary]:
        """Every experiment with its phase, users per variant, sample-ratio check and current calls."""
        summaries = []
        for key in await self._registry.list_keys():
            try:
                results = await self.results(key)
            except NotFound:  # deleted between the listing and the read
                continue
            summaries.append(ExperimentSummary.of(results))
        return summaries

    async def _experiment(self, key: str) -> Experiment:
        return await load_experiment(self._registry, key)


def _read_by(experiment: Experiment, method: AnalysisMethod) -> Experiment:
    """The experiment as if its plan named ``method``: a reader's override, never stored."""
    if method is AnalysisMethod.GROUP_SEQUENTIAL:
        raise InvalidRequest(
            "group_sequential reads the looks its plan schedules; it cannot be chosen per request",
            [FieldError("query.method", "one of frequentist, bayesian, sequential")],
        )
    return experiment.model_copy(update={"analysis": experiment.analysis.model_copy(update={"method": method})})


async def load_experiment(registry: ExperimentRegistry, key: str) -> Experiment:
    """The stored experiment; 404 naming ``key`` when there is none."""
    missing = NotFound(f"no experiment {key!r}", [FieldError("key", "no experiment with this key")])
    try:
        _KEY.validate_python(key)
    except ValidationError:
        # A key outside the allowed pattern was never stored; it must not reach Redis key names either.
        raise missing from None
    experiment = await registry.get(key)
    if experiment is None:
        raise missing
    return experiment


def sample_ratio(experiment: Experiment, users: list[int], threshold: float) -> tuple[SrmOut, SrmResult | None]:
    """The sample-ratio check of ``users`` (per variant, in order) against the weights; no result for counts that
    cannot be users."""
    if any(count < 0 for count in users):
        return SrmOut(p_value=None, statistic=None, dof=None, status=INVALID_DATA,
                      reason="a variant's stored user count is negative"), None
    result = srm_check(users, experiment.weights, threshold)
    return SrmOut.of(result), result
