"""The cells of a readout — one metric × treatment each — from stored sufficient statistics: the arms, the
fixed-horizon comparisons (vectorised), their reading by the plan's method with p-values adjusted as a family, the
per-metric wire results, the calls and the sample-ratio check. Shared by the results, segments and time series."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.analyzer.adapters.variant_stats import VariantTotals
from services.analyzer.looks import Cell, LookRecord, read_at_latest_look, waiting_reading
from services.analyzer.reading import Reading, adjusted_p_values, decide_variant, read_pair
from services.analyzer.schemas import ComparisonOut, DecisionOut, EffectOut, MetricResultsOut, MetricVariantOut, SrmOut
from services.analyzer.stats import Arm, SrmResult, TreatmentComparison, srm_check
from services.analyzer.stats.batch import compare_batch
from services.analyzer.stats.estimators import Statistic, estimate
from services.analyzer.stats.ratio import ratio_of, ratio_unit_variance
from splitstream.experiment import AnalysisMethod, Difference, Experiment, Metric, MetricType
from splitstream.statistics import CovariateMoments, Proportion, RatioMoments, SampleMoments

INVALID_DATA = "invalid_data"
_EXTRA_MOMENTS = ("dsum", "dsumsq", "md", "xsum", "xsumsq", "xy")
"""A variant hash's fields beyond Σ and Σ², per metric (splitstream/keys.py)."""


def _clean_squares(squares: float, total: float) -> float:
    # Sums of squares are folded as running sums of new² − old² deltas, which can round a hair below zero.
    return 0.0 if -1e-9 * (1.0 + abs(squares) + total * total) < squares < 0 else squares


def _has_covariate(metric: Metric, all_totals: Iterable[VariantTotals]) -> bool:
    """Whether CUPED applies: asked for, a metric that has a covariate, and pre-period data in some variant."""
    return metric.cuped and metric.adjustable and any(
        totals.moment(metric.key, "xsum") or totals.moment(metric.key, "xsumsq") for totals in all_totals
    )


def statistic_of(metric: Metric, totals: VariantTotals, cuped: bool = False) -> Statistic | str:
    """The metric's sufficient statistic in one variant (with its CUPED covariate when ``cuped``), or why the stored
    numbers cannot be one."""
    total, squares = totals.sum(metric.key), totals.sum_squares(metric.key)
    extra = {name: totals.moment(metric.key, name) for name in _EXTRA_MOMENTS}
    if not all(math.isfinite(value) for value in (total, squares, *extra.values())):
        return f"the stored sums of {metric.key!r} are not finite"
    squares = _clean_squares(squares, total)
    try:
        if metric.type is MetricType.RATIO:
            return RatioMoments(totals.users, total, squares, extra["dsum"],
                                _clean_squares(extra["dsumsq"], extra["dsum"]), extra["md"])
        if cuped:
            return CovariateMoments(totals.users, total, squares, extra["xsum"],
                                    _clean_squares(extra["xsumsq"], extra["xsum"]), extra["xy"])
        if metric.type is MetricType.BINOMIAL:
            return Proportion(n=totals.users, conversions=int(total))
        return SampleMoments(n=totals.users, sum=total, sum_squares=squares)
    except ValueError as error:
        return f"the stored statistics are inconsistent: {error}"


def statistics_of(metric: Metric, totals: dict[str, VariantTotals], keys: Sequence[str]) -> dict[str, Statistic | str]:
    """The metric's statistic in every variant of ``keys``: CUPED-adjustable in all of them or in none."""
    cuped = _has_covariate(metric, totals.values())
    return {key: statistic_of(metric, totals[key], cuped) for key in keys}


def _variant_summary(key: str, totals: VariantTotals, metric: Metric, arm: Statistic | str) -> MetricVariantOut:
    if isinstance(arm, str):
        return MetricVariantOut(key=key, n=totals.users, sum=totals.sum(metric.key), mean=None, variance=None)
    if isinstance(arm, RatioMoments):
        return MetricVariantOut(key=key, n=arm.n, sum=arm.numerator_sum, mean=ratio_of(arm),
                                variance=ratio_unit_variance(arm), denominator_sum=arm.denominator_sum)
    if isinstance(arm, CovariateMoments):
        outcome = arm.outcome()
        # A binomial metric's mean and variance keep their own convention; only the comparison is adjusted.
        plain = Proportion(arm.n, int(arm.sum)) if metric.type is MetricType.BINOMIAL else outcome
        return MetricVariantOut(key=key, n=arm.n, sum=arm.sum, mean=plain.mean, variance=plain.variance,
                                covariate_mean=arm.covariate().mean)
    total = float(arm.conversions) if isinstance(arm, Proportion) else arm.sum
    return MetricVariantOut(key=key, n=arm.n, sum=total, mean=arm.mean, variance=arm.variance)


def _invalid(variant: str, baseline: str, reason: str) -> ComparisonOut:
    nothing = EffectOut(
        effect=None, ci_lower=None, ci_upper=None, p_value=None, std_error=None, statistic=None, dof=None,
        method="welch_t", status=INVALID_DATA, reason=reason,
    )
    return ComparisonOut(variant=variant, baseline=baseline, relative=nothing, absolute=nothing, **nothing.model_dump())


@dataclass(frozen=True, slots=True)
class Pair:
    control: Statistic
    treatment: Statistic
    fixed: TreatmentComparison
    variance_reduction: float | None = None
    """CUPED: the share of Var(Δ) the covariate removed, on the plan's headline scale."""


@dataclass(frozen=True, slots=True)
class CellReading:
    reading: Reading
    fixed: TreatmentComparison
    adjusted_p_value: float | None
    variance_reduction: float | None = None


def metric_results(
    experiment: Experiment, metric: Metric, totals: dict[str, VariantTotals], cells: dict[Cell, CellReading]
) -> MetricResultsOut:
    keys = experiment.variant_keys()
    arms = statistics_of(metric, totals, keys)
    control_key = keys[0]
    absolute = experiment.analysis.difference is Difference.ABSOLUTE
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
            key, control_key, reading.relative, reading.absolute, headline_absolute=absolute,
            adjusted_p_value=cell.adjusted_p_value, variance_reduction=cell.variance_reduction,
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
        denominator_event=metric.denominator_event,
        role=metric.role,
        cuped=any(isinstance(arm, CovariateMoments) for arm in arms.values()),
        variants=[_variant_summary(key, totals[key], metric, arms[key]) for key in keys],
        comparisons=comparisons,
    )


def compare_cells(experiment: Experiment, totals: dict[str, VariantTotals], alpha: float) -> dict[Cell, Pair]:
    """The fixed-horizon comparison of every metric × treatment whose statistics are consistent: proportions and
    means in one vectorised pass (degenerate pairs fall back to the scalar engine), ratio and CUPED cells one by
    one."""
    keys = experiment.variant_keys()
    absolute = experiment.analysis.difference is Difference.ABSOLUTE
    cells: dict[Cell, tuple[Statistic, Statistic]] = {}
    plain: dict[Cell, tuple[Arm, Arm]] = {}
    for metric in experiment.metrics:
        arms = statistics_of(metric, totals, keys)
        control = arms[keys[0]]
        for key in keys[1:]:
            treatment = arms[key]
            if isinstance(control, Proportion | SampleMoments) and isinstance(treatment, Proportion | SampleMoments):
                plain[(metric.key, key)] = (control, treatment)
            if not isinstance(control, str) and not isinstance(treatment, str):
                cells[(metric.key, key)] = (control, treatment)
    batch = dict(zip(plain, compare_batch(list(plain.values()), alpha), strict=True))
    compared = {}
    for cell, (control, treatment) in cells.items():
        if cell in batch:
            compared[cell] = Pair(control, treatment, batch[cell])
            continue
        estimated = estimate(control, treatment, alpha)
        reduction = estimated.variance_reduction_absolute if absolute else estimated.variance_reduction_relative
        compared[cell] = Pair(control, treatment, estimated.comparison, reduction)
    return compared


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
    adjusted = adjusted_p_values(readings, plan.correction, alpha, plan.difference)
    return {
        cell: CellReading(reading, pair.fixed, p, pair.variance_reduction)
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
