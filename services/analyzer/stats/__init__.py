"""The analyzer's pure statistics engine: sufficient statistics in, typed results out (no I/O)."""

from services.analyzer.stats.frequentist import (
    Arm,
    absolute_difference,
    compare,
    compare_to_control,
    relative_difference,
    validate_alpha,
    welch_dof,
)
from services.analyzer.stats.results import Comparison, EffectKind, Method, SrmResult, Status, TreatmentComparison
from services.analyzer.stats.srm import DEFAULT_SRM_THRESHOLD, srm_check

__all__ = [
    "DEFAULT_SRM_THRESHOLD",
    "Arm",
    "Comparison",
    "EffectKind",
    "Method",
    "SrmResult",
    "Status",
    "TreatmentComparison",
    "absolute_difference",
    "compare",
    "compare_to_control",
    "relative_difference",
    "srm_check",
    "validate_alpha",
    "welch_dof",
]
