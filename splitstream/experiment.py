"""The experiment definition: what the assignment service stores and the collector and analyzer read."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

# Keys end up inside Redis keys and Kafka payloads, so they stay short and free of separators.
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
EventName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]


class MetricType(StrEnum):
    BINOMIAL = "binomial"
    """Share of exposed users with at least one matching event after exposure."""
    MEAN = "mean"
    """Per-user total of the matching events' values after exposure (0 for users without events)."""


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"


class Variant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    weight: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)


class MetricRole(StrEnum):
    GOAL = "goal"
    """The metric the experiment is meant to move; the ship / roll back call is made on it."""
    GUARDRAIL = "guardrail"
    """Must not get worse beyond its ``margin``; harm blocks shipping."""
    SECONDARY = "secondary"
    """Reported, corrected for multiple testing, never decisive on its own."""


class Metric(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    type: MetricType
    event: EventName
    role: MetricRole = MetricRole.SECONDARY
    higher_is_better: bool = True
    margin: float = Field(0.0, ge=0, le=10, allow_inf_nan=False)
    """For a guardrail: the relative harm tolerated (0.02 = 2%)."""
    cap: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Winsorize each user's total at this value before it enters Σy and Σy² (mean metrics): one whale order
    must not decide a revenue test."""
    conversion_window_hours: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Attribution window: an event counts for this metric only if exposure_ts <= event_ts < exposure_ts + window
    (both the events' own timestamps). None: no upper bound, every event at or after the exposure counts."""


class AnalysisMethod(StrEnum):
    FREQUENTIST = "frequentist"
    """Fixed-horizon Welch tests: read once, at the planned sample."""
    BAYESIAN = "bayesian"
    """Gaussian posterior: chance to win and expected losses."""
    SEQUENTIAL = "sequential"
    """Always-valid confidence sequences tuned to the planned sample: safe to read at any time."""
    GROUP_SEQUENTIAL = "group_sequential"
    """Planned horizon, O'Brien–Fleming alpha spending over the looks actually taken; needs
    ``planned_users_per_variant``."""


class PValueCorrection(StrEnum):
    HOLM = "holm"
    BH = "bh"
    NONE = "none"


class AnalysisPlan(BaseModel):
    """How the analyzer reads the experiment and when it is allowed to make a call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: AnalysisMethod = AnalysisMethod.FREQUENTIST
    alpha: float = Field(0.05, gt=0, lt=0.5, allow_inf_nan=False)
    correction: PValueCorrection = PValueCorrection.HOLM
    """Across every metric × treatment comparison; the goal metric's call uses its own unadjusted test."""
    # Validated even when absent, so that a group-sequential plan without a horizon is refused (see below).
    planned_users_per_variant: int | None = Field(None, gt=0, validate_default=True)
    min_users_per_variant: int = Field(1000, ge=0)
    min_days: float = Field(7.0, ge=0, allow_inf_nan=False)
    equivalence_margin: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Relative margin within which the goal's effect counts as neutral (TOST); None: never prove neutral."""
    looks: int = Field(5, ge=1, le=100)
    """Group sequential: scheduled looks, evenly spaced in information: look k when the smallest variant reaches
    k/looks of ``planned_users_per_variant``."""

    # A field validator (not a model one) so that the error names the missing field; ``method`` is declared
    # before it, so it is already in ``info.data`` (absent only when it was itself invalid).
    @field_validator("planned_users_per_variant")
    @classmethod
    def _horizon_of_group_sequential(cls, planned: int | None, info: ValidationInfo) -> int | None:
        if planned is None and info.data.get("method") is AnalysisMethod.GROUP_SEQUENTIAL:
            raise ValueError("the group_sequential method needs planned_users_per_variant (its planned horizon)")
        return planned


_Keyed = TypeVar("_Keyed", Variant, Metric)


class ExperimentSpec(BaseModel):
    """What an admin submits. The first variant is the control."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    variants: list[Variant] = Field(min_length=2, max_length=26)
    metrics: list[Metric] = Field(default_factory=list, max_length=50)
    analysis: AnalysisPlan = Field(default_factory=AnalysisPlan)

    # A field validator (not a model one) so that the error names the list at fault: "variants" or "metrics".
    @field_validator("variants", "metrics")
    @classmethod
    def _distinct_keys(cls, items: list[_Keyed]) -> list[_Keyed]:
        first_index: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.key in first_index:
                raise ValueError(f"duplicate key {item.key!r} at items {first_index[item.key]} and {index}")
            first_index[item.key] = index
        return items

    @field_validator("metrics")
    @classmethod
    def _one_goal(cls, metrics: list[Metric]) -> list[Metric]:
        goals = [metric.key for metric in metrics if metric.role is MetricRole.GOAL]
        if len(goals) > 1:
            raise ValueError(f"at most one goal metric, got {goals}")
        return metrics

    @property
    def goal(self) -> Metric | None:
        return next((metric for metric in self.metrics if metric.role is MetricRole.GOAL), None)


class Experiment(ExperimentSpec):
    """A stored experiment: the spec plus its lifecycle and hashing salt."""

    status: ExperimentStatus = ExperimentStatus.DRAFT
    salt: str
    created_at: datetime
    started_at: datetime | None = None

    @property
    def control(self) -> Variant:
        return self.variants[0]

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    def variant_keys(self) -> list[str]:
        return [v.key for v in self.variants]
