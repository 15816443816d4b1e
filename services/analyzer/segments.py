"""Segment drill-downs: an experiment's results within each value of one dimension (channel, is_new, tier...).

The collector keeps every segment's sufficient statistics as it keeps the variants' (services/collector/adapters/
fold.lua). Here the largest ``TOP_SEGMENTS`` values are read one by one and the rest are merged into ``(other)``
(sums over disjoint users add up). Each segment gets its own sample-ratio check; p-values are adjusted across the
whole table (every segment × metric × treatment), since reading many segments is the surest way to find a fluke.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.analyzer.adapters.variant_stats import VariantStatsReader, VariantTotals
from services.analyzer.cells import compare_cells, metric_results, read_cells, sample_ratio
from services.analyzer.reading import adjust_family
from services.analyzer.schemas import SegmentOut, SegmentResults, VariantOut
from services.analyzer.stats import validate_alpha
from splitstream.errors import FieldError, InvalidRequest
from splitstream.experiment import AnalysisMethod, AnalysisPlan, Experiment, PValueCorrection
from splitstream.keys import stats_scope

TOP_SEGMENTS = 20
OTHER = "(other)"


def top_segments(
    by_value: dict[str, dict[str, VariantTotals]], variants: Sequence[str], top: int = TOP_SEGMENTS
) -> list[tuple[str, dict[str, VariantTotals]]]:
    """The ``top`` values with the most users, largest first, then ``(other)`` holding every remaining one."""
    named = sorted(
        (value for value in by_value if value != OTHER),
        key=lambda value: (-sum(totals.users for totals in by_value[value].values()), value),
    )
    kept = [(value, by_value[value]) for value in named[:top]]
    rest = [by_value[value] for value in named[top:]] + ([by_value[OTHER]] if OTHER in by_value else [])
    if rest:
        merged = {variant: sum((totals[variant] for totals in rest), VariantTotals()) for variant in variants}
        kept.append((OTHER, merged))
    return kept


async def segment_results(
    experiment: Experiment, dimension: str, stats: VariantStatsReader, alpha: float | None, srm_threshold: float
) -> SegmentResults:
    if dimension not in experiment.segments:
        raise InvalidRequest(
            f"{dimension!r} is not a segment of {experiment.key!r}",
            [FieldError("query.segment", f"one of {experiment.segments}" if experiment.segments
                        else "the experiment declares no segments")],
        )
    alpha = experiment.analysis.alpha if alpha is None else alpha
    validate_alpha(alpha)
    plan = experiment.analysis
    # Within segments every cell is read at the current data (no scheduled looks) and left unadjusted, so that the
    # adjustment below covers the whole table at once.
    method = AnalysisMethod.FREQUENTIST if plan.method is AnalysisMethod.GROUP_SEQUENTIAL else plan.method
    reader = experiment.model_copy(update={"analysis": AnalysisPlan.model_validate({
        **plan.model_dump(), "method": method, "correction": PValueCorrection.NONE,
    })})
    variants = experiment.variant_keys()
    by_value = await stats.read_segments(stats_scope(experiment.key, experiment.phase), dimension, variants)
    segments = []
    for value, totals in top_segments(by_value, variants):
        users = [totals[key].users for key in variants]
        srm, _ = sample_ratio(experiment, users, srm_threshold)
        cells = read_cells(reader, compare_cells(reader, totals, alpha), alpha)
        segments.append(SegmentOut(
            value=value, srm=srm,
            variants=[VariantOut(key=v.key, users=totals[v.key].users, weight=v.weight) for v in experiment.variants],
            metrics=[metric_results(reader, metric, totals, cells) for metric in experiment.metrics],
        ))
    comparisons = [c for segment in segments for metric in segment.metrics for c in metric.comparisons]
    raw = [comparison.p_value for comparison in comparisons]
    adjusted = adjust_family(raw, plan.correction, alpha)
    for comparison, p_value in zip(comparisons, adjusted, strict=True):
        comparison.adjusted_p_value = p_value
    return SegmentResults(
        experiment=experiment.key, phase=experiment.phase, dimension=dimension, alpha=alpha, method=method,
        correction=plan.correction, segments=segments,
    )
