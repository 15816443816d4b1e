"""The experiment definition: what the assignment service stores and the collector and analyzer read."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

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


class Metric(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    type: MetricType
    event: EventName


_Keyed = TypeVar("_Keyed", Variant, Metric)


class ExperimentSpec(BaseModel):
    """What an admin submits. The first variant is the control."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    variants: list[Variant] = Field(min_length=2, max_length=26)
    metrics: list[Metric] = Field(default_factory=list, max_length=50)

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
