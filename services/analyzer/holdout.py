"""The campaign's total effect: each variant, and all of them pooled, against the experiment's held-out users.

A holdout (splitstream/layers.py) keeps a share of users away from the experiments it applies to. The assignment
service logs an exposure for each held-out user who would otherwise have been in the experiment (targeted, inside
its layer share and its coverage) under the arm ``HOLDOUT_ARM``, and the collector folds it like a variant. Holdout
membership hashes by the holdout's own salt, so held-out and treated users are two random samples of the same
eligible population, and comparing them is a randomised test of "the experiment as it runs" against "nothing".

The pooled arm ``(all variants)`` adds the variants' sums (their users are disjoint): the effect of the campaign
with its split of variants. The sample-ratio check compares held-out users with all treated ones against
q : 1 − q, where q = 1 − Π(1 − share) over the holdouts that apply (independent salts). Comparisons are read by the
plan's method (fixed horizon for a group-sequential plan, whose looks are scheduled for the variants), with p-values
adjusted across this table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from services.analyzer.adapters.variant_stats import VariantTotals
from services.analyzer.cells import compare_cells, metric_results, read_cells, sample_ratio
from services.analyzer.schemas import HoldoutResults
from splitstream.experiment import HOLDOUT_ARM, AnalysisMethod, Experiment, Variant
from splitstream.layers import Holdout

ALL_VARIANTS = "(all variants)"


def held_share(holdouts: Sequence[Holdout]) -> float:
    """q = 1 − Π(1 − share): the chance that at least one of ``holdouts`` (independent salts) holds a user."""
    return 1.0 - math.prod(1.0 - holdout.share for holdout in holdouts)


def comparison_table(
    experiment: Experiment, totals: dict[str, VariantTotals]
) -> tuple[Experiment, dict[str, VariantTotals]]:
    """The comparison as an experiment whose control is the held-out arm, then the variants, then their pool, with
    each arm's totals. Never stored, never validated (its arm names are not variant keys), only read by the same
    cells as the results; a group-sequential plan is read fixed-horizon (its looks are scheduled for the variants)."""
    variants = experiment.variant_keys()
    pooled = sum((totals.get(key, VariantTotals()) for key in variants), VariantTotals())
    arms = {
        HOLDOUT_ARM: totals.get(HOLDOUT_ARM, VariantTotals()),
        **{key: totals.get(key, VariantTotals()) for key in variants},
        ALL_VARIANTS: pooled,
    }
    method = experiment.analysis.method
    plan = experiment.analysis.model_copy(update={
        "method": AnalysisMethod.FREQUENTIST if method is AnalysisMethod.GROUP_SEQUENTIAL else method,
    })
    table = experiment.model_copy(update={
        "variants": [Variant.model_construct(key=key, weight=None, name="", payload=None) for key in arms],
        "analysis": plan,
    })
    return table, arms


def holdout_results(
    experiment: Experiment, holdouts: Sequence[Holdout], totals: dict[str, VariantTotals], alpha: float,
    srm_threshold: float,
) -> HoldoutResults | None:
    """The variants and their pool against the held-out arm; None when no holdout applies and none was counted."""
    applying = [holdout for holdout in holdouts if holdout.applies_to(experiment)]
    held = totals.get(HOLDOUT_ARM, VariantTotals())
    if not applying and held.users == 0:
        return None
    table, arms = comparison_table(experiment, totals)
    pooled = arms[ALL_VARIANTS]
    share = held_share(applying)
    cells = read_cells(table, compare_cells(table, arms, alpha), alpha)
    srm, _ = sample_ratio(
        experiment.model_copy(update={"variants": [
            Variant.model_construct(key=HOLDOUT_ARM, weight=share, name="", payload=None),
            Variant.model_construct(key=ALL_VARIANTS, weight=1.0 - share, name="", payload=None),
        ]}),
        [held.users, pooled.users], srm_threshold,
    ) if 0 < share < 1 else (None, None)
    return HoldoutResults(
        holdouts=[holdout.key for holdout in applying], expected_share=share, users=held.users, srm=srm,
        metrics=[metric_results(table, metric, arms, cells) for metric in experiment.metrics],
    )
