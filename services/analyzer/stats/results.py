"""Typed results of the stats engine. Every number is a finite float or ``None``; ``status``/``reason`` say why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    """Every number of the result is defined and the test behind it is valid for this data."""
    UNDEFINED = "undefined"
    """The quantity or its test does not exist for this data (e.g. a lift relative to a control mean of 0)."""
    INSUFFICIENT_DATA = "insufficient_data"
    """Too few users to estimate a variance or to trust an approximation."""
    MISMATCH = "mismatch"
    """Sample-ratio check only: users are not split as the weights say, so the comparisons are suspect."""


class EffectKind(StrEnum):
    RELATIVE = "relative"
    """m_t / m_c − 1."""
    ABSOLUTE = "absolute"
    """m_t − m_c."""


class Method(StrEnum):
    WELCH_T = "welch_t"
    """Welch's unequal-variance t-test with Welch–Satterthwaite degrees of freedom."""
    POOLED_Z = "pooled_z"
    """Two-proportion z-test with the pooled rate under H0; the interval is Newcombe's hybrid score interval."""
    FISHER_EXACT = "fisher_exact"
    """Fisher's exact test of the 2×2 table; the interval is Newcombe's hybrid score interval."""
    CONFIDENCE_SEQUENCE = "confidence_sequence"
    """Always-valid asymptotic confidence sequence (Waudby-Smith et al.): valid however often the data are read."""
    GROUP_SEQUENTIAL = "group_sequential"
    """Planned-horizon group-sequential z-test with Lan–DeMets O'Brien–Fleming alpha spending."""
    TOST = "tost"
    """Two one-sided tests of equivalence within a margin (Schuirmann 1987), on Welch's t."""
    GAUSSIAN_POSTERIOR = "gaussian_posterior"
    """Bayesian: the normal posterior of the effect; the interval is a credible interval and there is no p-value."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """One treatment against the control on one effect scale.

    ``effect`` is the point estimate; ``[ci_lower, ci_upper]`` the two-sided 1 − α interval; ``p_value`` the
    two-sided p-value of H0: no difference; ``statistic`` the t or z statistic; ``dof`` the t test's degrees of
    freedom. Whatever is ``None`` is explained by ``status`` and ``reason``.
    """

    kind: EffectKind
    method: Method
    status: Status
    reason: str | None
    effect: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    std_error: float | None = None
    statistic: float | None = None
    dof: float | None = None


@dataclass(frozen=True, slots=True)
class TreatmentComparison:
    """A treatment against the control on both scales; they test different hypotheses, so both are reported."""

    relative: Comparison
    absolute: Comparison


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Pearson χ² goodness of fit of the users per arm against the configured weights (dof = arms − 1)."""

    status: Status
    reason: str | None
    statistic: float | None = None
    p_value: float | None = None
    dof: int | None = None
