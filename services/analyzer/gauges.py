"""Experiment readouts as Prometheus gauges, in the default registry (served by the shared ``/metrics`` route).

- ``splitstream_users{experiment,variant}``                      exposed users per variant
- ``splitstream_metric_mean{experiment,variant,metric}``         per-user mean (binomial: conversion rate)
- ``splitstream_effect{experiment,variant,metric}``              relative lift m_t/m_c − 1 of a treatment over the
                                                                 control, read by the experiment's analysis method
- ``splitstream_effect_ci_lower`` / ``splitstream_effect_ci_upper``  its interval (same labels)
- ``splitstream_p_value{experiment,variant,metric}``             its unadjusted two-sided p-value
- ``splitstream_chance_to_win{experiment,variant,metric}``       Bayesian plans only: P(lift > 0)
- ``splitstream_srm_p_value{experiment}``                        p-value of the sample-ratio check
- ``splitstream_holdout_users{experiment}``                      held-out users (services/analyzer/holdout.py)
- ``splitstream_holdout_effect{experiment,variant,metric}``      relative lift of each variant, and of the pooled
                                                                 ``(all variants)``, over the held-out users
- ``splitstream_holdout_effect_ci_lower`` / ``_ci_upper``, ``splitstream_holdout_p_value``  its interval and its
                                                                 p-value (adjusted across the holdout table)
- ``splitstream_holdout_srm_p_value{experiment}``                held-out against treated users, q : 1 − q
- ``splitstream_gauge_refresh_errors_total``                     refreshes of one experiment (or of the listing)
                                                                 that failed; its series keep their last values

The gauges are set ON A SCHEDULE by :class:`GaugeRefresher` (``AnalyzerSettings.gauge_refresh_seconds``), not per
scrape: a scrape must stay cheap however many experiments there are. A value the results report as undefined (None)
has no series, so Grafana shows a gap instead of a made-up number.

Lifecycle: running and stopped experiments are published (a stopped experiment's final readout stays on the
dashboard); drafts have no data and are skipped; an experiment that leaves the registry has every series removed.
Reading a group-sequential experiment records its next look when due, exactly as a call to the results API would.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import structlog
from prometheus_client import Counter, Gauge

from services.analyzer.schemas import ExperimentResults, MetricResultsOut
from services.analyzer.service import Overrides, ResultsService
from splitstream.errors import NotFound
from splitstream.experiment import Difference, ExperimentStatus
from splitstream.registry import ExperimentRegistry

log = structlog.get_logger(__name__)

_CELL = ["experiment", "variant", "metric"]
USERS: Final = Gauge("splitstream_users", "Exposed users per variant.", ["experiment", "variant"])
METRIC_MEAN: Final = Gauge("splitstream_metric_mean", "Per-user mean of a metric (binomial: conversion rate).", _CELL)
EFFECT: Final = Gauge("splitstream_effect", "Relative lift of the variant over the control.", _CELL)
EFFECT_CI_LOWER: Final = Gauge("splitstream_effect_ci_lower", "Lower bound of the relative lift's interval.", _CELL)
EFFECT_CI_UPPER: Final = Gauge("splitstream_effect_ci_upper", "Upper bound of the relative lift's interval.", _CELL)
P_VALUE: Final = Gauge("splitstream_p_value", "Unadjusted two-sided p-value of the relative lift.", _CELL)
CHANCE_TO_WIN: Final = Gauge("splitstream_chance_to_win", "Bayesian plans: P(lift > 0).", _CELL)
SRM_P_VALUE: Final = Gauge("splitstream_srm_p_value", "p-value of the sample-ratio check.", ["experiment"])
HOLDOUT_USERS: Final = Gauge("splitstream_holdout_users", "Held-out users of the experiment.", ["experiment"])
HOLDOUT_EFFECT: Final = Gauge(
    "splitstream_holdout_effect", "Relative lift of the variant (or all variants) over the held-out users.", _CELL
)
HOLDOUT_CI_LOWER: Final = Gauge("splitstream_holdout_effect_ci_lower", "Lower bound of the holdout lift.", _CELL)
HOLDOUT_CI_UPPER: Final = Gauge("splitstream_holdout_effect_ci_upper", "Upper bound of the holdout lift.", _CELL)
HOLDOUT_P_VALUE: Final = Gauge("splitstream_holdout_p_value", "p-value of the lift over the holdout.", _CELL)
HOLDOUT_SRM_P_VALUE: Final = Gauge(
    "splitstream_holdout_srm_p_value", "p-value of held-out against treated users, q : 1 - q.", ["experiment"]
)
REFRESH_ERRORS: Final = Counter(
    "splitstream_gauge_refresh_errors", "Experiment readouts (or registry listings) that failed to refresh."
)
PUBLISHED_STATUSES: Final = frozenset({ExperimentStatus.RUNNING, ExperimentStatus.STOPPED})


@dataclass(frozen=True, slots=True)
class Sample:
    """One series: the gauge it belongs to, its label values in the gauge's label order, and its value."""

    gauge: Gauge
    labels: tuple[str, ...]
    value: float


_Candidate = tuple[Gauge, tuple[str, ...], float | None]
MAIN_LIFTS: Final = (EFFECT, EFFECT_CI_LOWER, EFFECT_CI_UPPER, P_VALUE)
HOLDOUT_LIFTS: Final = (HOLDOUT_EFFECT, HOLDOUT_CI_LOWER, HOLDOUT_CI_UPPER, HOLDOUT_P_VALUE)


def _lifts(family: tuple[Gauge, Gauge, Gauge, Gauge], key: str, metrics: list[MetricResultsOut]) -> list[_Candidate]:
    """Each comparison's lift, interval bounds and p-value, in the gauges of ``family`` (in that order)."""
    effect, lower, upper, p_value = family
    candidates: list[_Candidate] = []
    for metric in metrics:
        for comparison in metric.comparisons:
            cell = (key, comparison.variant, metric.key)
            candidates += [(effect, cell, comparison.effect), (lower, cell, comparison.ci_lower),
                           (upper, cell, comparison.ci_upper), (p_value, cell, comparison.p_value)]
    return candidates


def samples_of(results: ExperimentResults) -> list[Sample]:
    """Every series an experiment's results define; a None (or non-finite) value gives no series."""
    key = results.experiment
    candidates: list[_Candidate] = [(SRM_P_VALUE, (key,), results.srm.p_value)]
    candidates += [(USERS, (key, variant.key), float(variant.users)) for variant in results.variants]
    for metric in results.metrics:
        candidates += [(METRIC_MEAN, (key, v.key, metric.key), v.mean) for v in metric.variants]
        candidates += [(CHANCE_TO_WIN, (key, c.variant, metric.key), c.chance_to_win) for c in metric.comparisons]
    candidates += _lifts(MAIN_LIFTS, key, results.metrics)
    holdout = results.holdout
    if holdout is not None:
        candidates += [(HOLDOUT_USERS, (key,), float(holdout.users)),
                       (HOLDOUT_SRM_P_VALUE, (key,), holdout.srm.p_value if holdout.srm else None)]
        candidates += _lifts(HOLDOUT_LIFTS, key, holdout.metrics)
    return [
        Sample(gauge, labels, value)
        for gauge, labels, value in candidates
        if value is not None and math.isfinite(value)
    ]


_Series = tuple[Gauge, tuple[str, ...]]


def _stopping() -> bool:
    """Whether this task was asked to stop. redis-py can swallow the cancellation of a command in flight (or turn it
    into a connection error), and the loop would then sleep through its own shutdown."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class GaugeRefresher:
    """Sets the experiment gauges from the registry. It removes only series it published itself, so several
    analyzers in one process (tests) never remove each other's."""

    def __init__(self, registry: ExperimentRegistry, results: ResultsService) -> None:
        self._registry = registry
        self._results = results
        self._published: dict[str, set[_Series]] = {}

    async def refresh(self) -> None:
        """One pass over every experiment; a failing experiment is logged and counted, the others still refresh."""
        try:
            keys = await self._registry.list_keys()
        except Exception:
            if _stopping():
                raise asyncio.CancelledError from None
            REFRESH_ERRORS.inc()
            log.exception("gauge_refresh_listing_failed")
            return
        for key in keys:
            try:
                samples = await self._samples(key)
            except Exception:
                if _stopping():
                    raise asyncio.CancelledError from None
                REFRESH_ERRORS.inc()
                log.exception("gauge_refresh_failed", experiment=key)
                continue
            self._publish(key, samples)
        for gone in set(self._published) - set(keys):
            self._publish(gone, [])

    async def run(self, interval_seconds: float) -> None:
        """Refresh every ``interval_seconds`` until cancelled, starting at once."""
        while True:
            await self.refresh()
            if _stopping():
                raise asyncio.CancelledError
            await asyncio.sleep(interval_seconds)

    def forget(self) -> None:
        """Remove every series this refresher published (at shutdown)."""
        for key in list(self._published):
            self._publish(key, [])

    async def _samples(self, key: str) -> list[Sample]:
        experiment = await self._registry.get(key)
        if experiment is None or experiment.status not in PUBLISHED_STATUSES:
            return []
        try:
            # Gauges carry lifts (the dashboard's unit), whatever scale the plan leads with.
            return samples_of(await self._results.results(key, overrides=Overrides(difference=Difference.RELATIVE)))
        except NotFound:
            return []  # deleted between the listing and the read

    def _publish(self, key: str, samples: Iterable[Sample]) -> None:
        current: set[_Series] = set()
        for sample in samples:
            sample.gauge.labels(*sample.labels).set(sample.value)
            current.add((sample.gauge, sample.labels))
        for gauge, labels in self._published.get(key, set()) - current:
            gauge.remove(*labels)
        if current:
            self._published[key] = current
        else:
            self._published.pop(key, None)
