"""Results of an experiment: its definition and stored sufficient statistics, run through the stats engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from services.analyzer.adapters.looks import LookLog
from services.analyzer.adapters.variant_stats import VariantStatsReader
from services.analyzer.cells import (
    Pair,
    compare_cells,
    decisions,
    metric_results,
    read_cells,
    sample_ratio,
)
from services.analyzer.holdout import holdout_results
from services.analyzer.looks import (
    Cell,
    LookRecord,
    build_look,
    due_threshold,
    goal_rejected,
)
from services.analyzer.schemas import (
    ExperimentResults,
    ExperimentSummary,
    LookOut,
    SegmentResults,
    VariantOut,
)
from services.analyzer.segments import segment_results
from services.analyzer.stats import validate_alpha
from splitstream.errors import FieldError, InvalidRequest, NotFound
from splitstream.experiment import HOLDOUT_ARM, AnalysisMethod, Difference, Experiment, Key
from splitstream.keys import stats_scope
from splitstream.registry import ExperimentRegistry

_KEY = TypeAdapter(Key)
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
        self, key: str, alpha: float | None = None, overrides: Overrides | None = None
    ) -> ExperimentResults:
        """Every treatment against the control (variants[0]) on every metric, read as the experiment's analysis
        plan says (or as ``overrides`` ask), the sample-ratio check, and the call for each treatment when a goal
        metric is declared. A group-sequential plan is read at its latest recorded look; this request records the
        next look when due."""
        experiment = await self.experiment_for_reading(key, overrides)
        alpha = experiment.analysis.alpha if alpha is None else alpha
        validate_alpha(alpha)
        totals = await self._stats.read(
            stats_scope(experiment.key, experiment.phase), [*experiment.variant_keys(), HOLDOUT_ARM]
        )
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
            difference=experiment.analysis.difference,
            correction=experiment.analysis.correction,
            variants=[VariantOut(key=v.key, users=totals[v.key].users, weight=v.weight) for v in experiment.variants],
            srm=srm,
            metrics=[metric_results(experiment, metric, totals, cells) for metric in experiment.metrics],
            decisions=decisions(experiment, cells, srm_result, users, alpha, self._clock()),
            looks=[LookOut(look=r.look, information_fraction=r.information_fraction, users=r.users,
                           recorded_at=r.recorded_at) for r in looks],
            holdout=holdout_results(experiment, await self._registry.holdouts(), totals, alpha, self._srm_threshold),
        )

    async def _take_look(
        self, experiment: Experiment, users: dict[str, int], pairs: dict[Cell, Pair]
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

    async def experiment_for_reading(self, key: str, overrides: Overrides | None = None) -> Experiment:
        """The stored experiment, as ``overrides`` ask to read it (404 for an unknown key)."""
        experiment = await self._experiment(key)
        return experiment if overrides is None else overrides.applied_to(experiment)

    async def segments(
        self, key: str, dimension: str, alpha: float | None = None, overrides: Overrides | None = None
    ) -> SegmentResults:
        experiment = await self.experiment_for_reading(key, overrides)
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


@dataclass(frozen=True, slots=True)
class Overrides:
    """A reader's choices for one request, never stored: the method, the headline scale, CUPED on or off for every
    metric (it only changes anything where the metric has pre-exposure data)."""

    method: AnalysisMethod | None = None
    difference: Difference | None = None
    cuped: bool | None = None

    def applied_to(self, experiment: Experiment) -> Experiment:
        if self.method is AnalysisMethod.GROUP_SEQUENTIAL and experiment.analysis.method is not self.method:
            raise InvalidRequest(
                "group_sequential reads the looks its plan schedules; it cannot be chosen per request",
                [FieldError("query.method", "one of frequentist, bayesian, sequential")],
            )
        plan = {name: value for name, value in (("method", self.method), ("difference", self.difference))
                if value is not None}
        update: dict[str, object] = {"analysis": experiment.analysis.model_copy(update=plan)}
        if self.cuped is not None:
            update["metrics"] = [metric.model_copy(update={"cuped": self.cuped}) for metric in experiment.metrics]
        return experiment.model_copy(update=update)


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

