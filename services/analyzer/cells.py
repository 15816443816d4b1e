"""The cells of a readout — one metric × treatment each — from stored sufficient statistics: the arms, the
fixed-horizon comparisons (vectorised), their reading by the plan's method with p-values adjusted as a family, the
per-metric wire results, the calls and the sample-ratio check. Shared by the results, segments and time series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.analyzer.adapters.variant_stats import VariantTotals
from services.analyzer.looks import Cell, LookRecord, read_at_latest_look, waiting_reading
from services.analyzer.reading import Reading, adjusted_p_values, decide_variant, read_pair
from services.analyzer.schemas import ComparisonOut, DecisionOut, EffectOut, MetricResultsOut, MetricVariantOut, SrmOut
from services.analyzer.stats import Arm, SrmResult, TreatmentComparison, srm_check
from services.analyzer.stats.batch import compare_batch
from splitstream.experiment import AnalysisMethod, Experiment, Metric, MetricType
from splitstream.statistics import Proportion, SampleMoments

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
class Pair:
    control: Arm
    treatment: Arm
    fixed: TreatmentComparison


@dataclass(frozen=True, slots=True)
class CellReading:
    reading: Reading
    fixed: TreatmentComparison
    adjusted_p_value: float | None


def metric_results(
    experiment: Experiment, metric: Metric, totals: dict[str, VariantTotals], cells: dict[Cell, CellReading]
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


def compare_cells(experiment: Experiment, totals: dict[str, VariantTotals], alpha: float) -> dict[Cell, Pair]:
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
    return {cell: Pair(c, t, f) for cell, (c, t), f in zip(cells, pairs, fixed, strict=True)}


def read_cells(
    experiment: Experiment, pairs: dict[Cell, Pair], alpha: float, looks: Sequence[LookRecord] = (),
    smallest_variant_users: int = 0,
) -> dict[Cell, CellReading]:
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
        cell: CellReading(reading, pair.fixed, p)
        for (cell, pair), reading, p in zip(pairs.items(), readings, adjusted, strict=True)
    }


def decisions(
    experiment: Experiment, cells: dict[Cell, CellReading], srm: SrmResult | None, users: list[int], alpha: float,
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


def sample_ratio(experiment: Experiment, users: list[int], threshold: float) -> tuple[SrmOut, SrmResult | None]:
    """The sample-ratio check of ``users`` (per variant, in order) against the weights; no result for counts that
    cannot be users."""
    if any(count < 0 for count in users):
        return SrmOut(p_value=None, statistic=None, dof=None, status=INVALID_DATA,
                      reason="a variant's stored user count is negative"), None
    result = srm_check(users, experiment.weights, threshold)
    return SrmOut.of(result), result
