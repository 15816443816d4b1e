"""The time series: snapshots of every running experiment's statistics, hourly and on demand, and the cumulative
effect with its interval at each snapshot, for charts; with held-out users, also each variant's and the pooled
campaign's effect against them (services/analyzer/holdout.py).

Each point is read like the results at that instant by the plan's method (a sequential plan's confidence sequence
is what makes a chart of a running test honest); a group-sequential plan's points are read fixed-horizon, since
its tests happen at its scheduled looks only (see the results' ``looks``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from services.analyzer.adapters.snapshots import Snapshot, SnapshotLog
from services.analyzer.adapters.variant_stats import VariantTotals
from services.analyzer.cells import INVALID_DATA, compare_cells
from services.analyzer.holdout import comparison_table
from services.analyzer.reading import read_pair
from services.analyzer.schemas import HoldoutPoint, PointComparison, PointMetric, Timeseries, TimeseriesPoint
from services.analyzer.service import load_experiment
from services.analyzer.stats import validate_alpha
from splitstream.experiment import HOLDOUT_ARM, AnalysisMethod, AnalysisPlan, Experiment, ExperimentStatus
from splitstream.keys import stats_scope
from splitstream.registry import ExperimentRegistry

log = structlog.get_logger(__name__)

def counted_arms(experiment: Experiment) -> list[str]:
    """What a snapshot keeps: every variant, and the held-out users (empty when no holdout applies)."""
    return [*experiment.variant_keys(), HOLDOUT_ARM]


SNAPSHOT_STATUSES = frozenset({ExperimentStatus.RUNNING, ExperimentStatus.PAUSED})
"""Experiments whose statistics can still move get a scheduled snapshot."""


def point_of(experiment: Experiment, snapshot: Snapshot, alpha: float) -> TimeseriesPoint:
    keys = experiment.variant_keys()
    recorded = snapshot.totals()
    totals = {key: recorded.get(key, VariantTotals()) for key in keys}
    held = recorded.get(HOLDOUT_ARM, VariantTotals())
    holdout = None
    if held.users > 0:
        table, arms = comparison_table(experiment, recorded)
        holdout = HoldoutPoint(users=held.users, metrics=_point_metrics(table, arms, alpha))
    return TimeseriesPoint(at=snapshot.at, users={key: totals[key].users for key in keys},
                           metrics=_point_metrics(experiment, totals, alpha), holdout=holdout)


def _point_metrics(experiment: Experiment, totals: dict[str, VariantTotals], alpha: float) -> list[PointMetric]:
    """Each metric's cumulative comparisons of the arms after the first (the control) with it."""
    keys = experiment.variant_keys()
    pairs = compare_cells(experiment, totals, alpha)
    plan = experiment.analysis
    if plan.method is AnalysisMethod.GROUP_SEQUENTIAL:
        plan = AnalysisPlan(method=AnalysisMethod.FREQUENTIST, alpha=plan.alpha)
    metrics = []
    for metric in experiment.metrics:
        comparisons = []
        for variant in keys[1:]:
            pair = pairs.get((metric.key, variant))
            if pair is None:
                comparisons.append(PointComparison(
                    variant=variant, effect=None, ci_lower=None, ci_upper=None, p_value=None, status=INVALID_DATA,
                ))
                continue
            reading = read_pair(plan, pair.control, pair.treatment, pair.fixed, alpha)
            comparisons.append(PointComparison.of(variant, reading.relative))
        metrics.append(PointMetric(key=metric.key, comparisons=comparisons))
    return metrics


class TimeseriesService:
    def __init__(
        self, registry: ExperimentRegistry, snapshots: SnapshotLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._registry = registry
        self._snapshots = snapshots
        self._clock = clock

    async def take(self, key: str) -> Snapshot:
        """A snapshot of the experiment's current phase, now."""
        experiment = await load_experiment(self._registry, key)
        scope = stats_scope(experiment.key, experiment.phase)
        return await self._snapshots.take(scope, counted_arms(experiment), self._clock())

    async def series(self, key: str, alpha: float | None = None) -> Timeseries:
        experiment = await load_experiment(self._registry, key)
        alpha = experiment.analysis.alpha if alpha is None else alpha
        validate_alpha(alpha)
        snapshots = await self._snapshots.read(stats_scope(experiment.key, experiment.phase))
        return Timeseries(
            experiment=experiment.key, phase=experiment.phase, method=experiment.analysis.method, alpha=alpha,
            points=[point_of(experiment, snapshot, alpha) for snapshot in snapshots],
        )

    async def take_all(self) -> int:
        """One scheduled pass: a snapshot of every running or paused experiment; returns how many were taken."""
        taken = 0
        for key in await self._registry.list_keys():
            experiment = await self._registry.get(key)
            if experiment is None or experiment.status not in SNAPSHOT_STATUSES:
                continue
            scope = stats_scope(experiment.key, experiment.phase)
            await self._snapshots.take(scope, counted_arms(experiment), self._clock())
            taken += 1
        return taken

    async def run(self, interval_seconds: float) -> None:
        """Take a pass every ``interval_seconds`` until cancelled (the first one after one interval)."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.take_all()
            except Exception:  # logged; the next pass tries again
                log.exception("snapshot_pass_failed")
