"""The analyzer's pure statistics engine: sufficient statistics in, typed results out (no I/O).

- ``frequentist``: Welch comparisons, relative (delta method) and absolute, two- or one-sided.
- ``proportions``: the tests valid where a binomial arm converts at 0% or 100% (pooled z, Fisher, Newcombe).
- ``ratio``, ``cuped``: ratio metrics by the delta method; regression adjustment with a pre-exposure covariate.
- ``bayesian``: the Gaussian posterior of the effect: chance to win, credible interval, expected losses.
- ``sequential``: always-valid confidence sequences; group-sequential O'Brien–Fleming alpha spending.
- ``multiple``, ``equivalence``, ``power``, ``srm``, ``decision``: the family-wise and planning tools, and the call.
- ``batch``: many comparisons at once, for readouts.
"""

from services.analyzer.stats.batch import compare_batch
from services.analyzer.stats.bayesian import BayesianComparison, BayesianEffect, GaussianPrior, bayesian_compare
from services.analyzer.stats.cuped import CupedComparison, compare_cuped
from services.analyzer.stats.decision import Decision, DecisionPolicy, MetricReading, Verdict, decide
from services.analyzer.stats.equivalence import EquivalenceResult, equivalence_compare, equivalence_test
from services.analyzer.stats.frequentist import (
    Alternative,
    Arm,
    absolute_difference,
    compare,
    compare_to_control,
    relative_difference,
    validate_alpha,
    welch_dof,
)
from services.analyzer.stats.multiple import Correction, adjust_p_values
from services.analyzer.stats.power import PowerMethod, SampleSizePlan, duration_days, sample_size
from services.analyzer.stats.ratio import compare_ratio
from services.analyzer.stats.results import Comparison, EffectKind, Method, SrmResult, Status, TreatmentComparison
from services.analyzer.stats.sequential import (
    ConfidenceSequenceResult,
    GroupSequentialResult,
    confidence_sequence,
    group_sequential_compare,
    tuning_parameter_from_plan,
)
from services.analyzer.stats.srm import DEFAULT_SRM_THRESHOLD, srm_check

__all__ = [
    "DEFAULT_SRM_THRESHOLD",
    "Alternative",
    "Arm",
    "BayesianComparison",
    "BayesianEffect",
    "Comparison",
    "ConfidenceSequenceResult",
    "Correction",
    "CupedComparison",
    "Decision",
    "DecisionPolicy",
    "EffectKind",
    "EquivalenceResult",
    "GaussianPrior",
    "GroupSequentialResult",
    "Method",
    "MetricReading",
    "PowerMethod",
    "SampleSizePlan",
    "SrmResult",
    "Status",
    "TreatmentComparison",
    "Verdict",
    "absolute_difference",
    "adjust_p_values",
    "bayesian_compare",
    "compare",
    "compare_batch",
    "compare_cuped",
    "compare_ratio",
    "compare_to_control",
    "confidence_sequence",
    "decide",
    "duration_days",
    "equivalence_compare",
    "equivalence_test",
    "group_sequential_compare",
    "relative_difference",
    "sample_size",
    "srm_check",
    "tuning_parameter_from_plan",
    "validate_alpha",
    "welch_dof",
]
