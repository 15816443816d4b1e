"""The experiment definition: what the assignment service stores and the collector and analyzer read."""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from splitstream.hashing import BUCKETS, HASH_VERSION, BucketRange
from splitstream.targeting import AttributeName, Attributes, Condition, Scalar

# Keys end up inside Redis keys and Kafka payloads, so they stay short and free of separators.
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
EventName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")]
HOLDOUT_ARM = "(holdout)"
"""The statistics arm of an experiment's held-out users (in a holdout, otherwise in the experiment): they see the
control, and the campaign's total effect is every variant against them. No variant key can be this (parentheses)."""
Arm = Annotated[str, StringConstraints(pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}|\(holdout\))$")]
"""What an exposure counts in: a variant key, or ``HOLDOUT_ARM``."""
WEIGHT_TOLERANCE = 1e-9


class MetricType(StrEnum):
    BINOMIAL = "binomial"
    """Share of exposed users with at least one matching event after exposure."""
    MEAN = "mean"
    """Per-user total of the matching events' values after exposure (0 for users without events)."""
    RATIO = "ratio"
    """Σm/Σd over exposed users: m is a user's total of ``event``'s values, d the user's count of
    ``denominator_event`` events (or their total value, with ``denominator_aggregate: "sum"``): clicks per
    impression, revenue per order. Compared by the delta method."""


class Aggregate(StrEnum):
    """How a user's events of one name become one number (an event without a value counts as 1)."""

    COUNT = "count"
    SUM = "sum"


MAX_CUPED_LOOKBACK_DAYS = 30
"""The collector keeps each user's daily metric totals this long, so no experiment may look further back."""


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    """Defined; only forced users see a variant."""
    RUNNING = "running"
    """Assigning and logging exposures."""
    PAUSED = "paused"
    """Nobody enters or sees a treatment (forced users aside); start resumes it in the same phase."""
    STOPPED = "stopped"
    """Over without a winner: everyone sees the control."""
    SHIPPED = "shipped"
    """Over with a winner: every targeted user outside the holdouts sees ``shipped_variant`` (forced QA users
    still see their forced variant)."""


class ExperimentKind(StrEnum):
    CONTENT = "content"
    """Titles, covers, push copy, form layouts."""
    PRICING = "pricing"
    """Price points, membership benefit bundles, coupons."""
    CAMPAIGN = "campaign"
    """Formats, channels, holdouts."""


class Variant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    weight: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    """The share of the covered traffic; all weights sum to 1. Leave every weight out for an equal split."""
    name: str = Field("", max_length=200)
    payload: JsonValue = None
    """What the variant shows, handed to the caller as is: a title text, a price, a layout's settings."""


class RampStep(BaseModel):
    """From ``at`` on, the experiment covers ``coverage`` of its (targeted, layer) traffic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    coverage: float = Field(ge=0, le=1, allow_inf_nan=False)


class LayerSlot(BaseModel):
    """Membership of a layer: the experiment owns ``share`` of the layer's buckets, which no other experiment of the
    layer gets, so a user in the layer sees at most one of its experiments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    share: float = Field(ge=1 / BUCKETS, le=1, allow_inf_nan=False)
    """At least one bucket (0.0001)."""


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
    denominator_event: EventName | None = Field(None, validate_default=True)
    """Ratio metrics only, and required there: the event whose per-user count (or total) divides ``event``'s."""
    denominator_aggregate: Aggregate = Aggregate.COUNT
    cuped: bool = True
    """Binomial and mean metrics: read with CUPED, the covariate being the same metric over the
    ``analysis.cuped_lookback_days`` whole (UTC) days before the day of the user's first exposure. Without
    pre-period activity the adjustment is nil and the readout equals the unadjusted one."""

    @field_validator("denominator_event")
    @classmethod
    def _denominator_of_ratio(cls, event: str | None, info: ValidationInfo) -> str | None:
        metric_type = info.data.get("type")
        if metric_type is MetricType.RATIO and event is None:
            raise ValueError("a ratio metric needs denominator_event (the event whose count or total divides)")
        if metric_type is not None and metric_type is not MetricType.RATIO and event is not None:
            raise ValueError(f"only ratio metrics have a denominator; this metric is {metric_type.value}")
        return event

    @property
    def adjustable(self) -> bool:
        """Whether the stream keeps this metric's pre-exposure covariate (binomial and mean metrics)."""
        return self.type is not MetricType.RATIO

    def feeds(self) -> list[tuple[str, str]]:
        """(event name, role) pairs of the events that move this metric, as the collector's fold reads them: the
        metric's type for ``event`` (y, or a ratio's numerator m), and ``denominator-count`` or
        ``denominator-sum`` for a ratio's ``denominator_event`` (d)."""
        fed = [(self.event, self.type.value)]
        if self.denominator_event is not None:
            fed.append((self.denominator_event, f"denominator-{self.denominator_aggregate.value}"))
        return fed


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


class Difference(StrEnum):
    """The scale a readout leads with (both are always computed)."""

    RELATIVE = "relative"
    """The lift m_t/m_c − 1."""
    ABSOLUTE = "absolute"
    """The difference m_t − m_c, in the metric's unit."""


class PValueCorrection(StrEnum):
    HOLM = "holm"
    BH = "bh"
    NONE = "none"


class AnalysisPlan(BaseModel):
    """How the analyzer reads the experiment and when it is allowed to make a call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: AnalysisMethod = AnalysisMethod.FREQUENTIST
    difference: Difference = Difference.RELATIVE
    """The scale of the headline effect, interval and p-value; the call is always made on the relative lift."""
    alpha: float = Field(0.05, gt=0, lt=0.5, allow_inf_nan=False)
    correction: PValueCorrection = PValueCorrection.HOLM
    """Across every metric × treatment comparison; the goal metric's call uses its own unadjusted test."""
    # Validated even when absent, so that a group-sequential plan without a horizon is refused (see below).
    planned_users_per_variant: int | None = Field(None, gt=0, validate_default=True)
    min_users_per_variant: int = Field(1000, ge=0)
    min_days: float = Field(7.0, ge=0, allow_inf_nan=False)
    equivalence_margin: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Relative margin within which the goal's effect counts as neutral (TOST); None: never prove neutral."""
    cuped_lookback_days: int = Field(14, ge=1, le=MAX_CUPED_LOOKBACK_DAYS)
    """CUPED's pre-period: this many whole UTC days before the day of a user's first exposure."""
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
    """What an admin submits. The first variant is the control.

    Who enters, in order: the ``unit`` attribute must be present, every ``targeting`` condition must hold, the user
    must be outside the holdouts, inside the experiment's share of its ``layer`` and inside the ``coverage`` (the
    ``ramp`` step in force, else ``coverage``). ``forced`` users skip all of that (QA; never counted).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    name: str = Field("", max_length=200)
    hypothesis: str = Field("", max_length=4000)
    kind: ExperimentKind = ExperimentKind.CONTENT
    variants: list[Variant] = Field(min_length=2, max_length=26)
    coverage: float = Field(1.0, ge=0, le=1, allow_inf_nan=False)
    unit: AttributeName = "user_id"
    """The attribute users are bucketed by: ``user_id`` (the request's user id) or e.g. ``device_id``."""
    targeting: list[Condition] = Field(default_factory=list, max_length=50)
    layer: LayerSlot | None = None
    holdouts: list[Key] = Field(default_factory=list, max_length=10)
    """Holdouts of ``attached`` scope this experiment honours; ``global`` holdouts apply to every experiment."""
    forced: dict[UserId, Key] = Field(default_factory=dict, max_length=1000)
    """Unit id → variant key, for QA: those users always see that variant and are never counted."""
    ramp: list[RampStep] = Field(default_factory=list, max_length=50)
    metrics: list[Metric] = Field(default_factory=list, max_length=50)
    analysis: AnalysisPlan = Field(default_factory=AnalysisPlan)
    segments: list[AttributeName] = Field(default_factory=list, max_length=10)
    """Dimensions (attributes of the first exposure: channel, country, is_new...) the statistics are also kept
    by, per value (the first ``max_segment_values`` values of each, the rest as ``(other)``)."""

    @field_validator("segments")
    @classmethod
    def _distinct_segments(cls, segments: list[str]) -> list[str]:
        repeated = sorted({name for name in segments if segments.count(name) > 1})
        if repeated:
            raise ValueError(f"segments named more than once: {repeated}")
        return segments

    @field_validator("variants")
    @classmethod
    def _weights_sum_to_one(cls, variants: list[Variant]) -> list[Variant]:
        weights = [variant.weight for variant in variants]
        if all(weight is None for weight in weights):
            return [variant.model_copy(update={"weight": 1 / len(variants)}) for variant in variants]
        if any(weight is None for weight in weights):
            raise ValueError("give every variant a weight, or none for an equal split")
        total = math.fsum(weight for weight in weights if weight is not None)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(f"weights must sum to 1 (within {WEIGHT_TOLERANCE:g}); they sum to {total!r}")
        return variants

    @field_validator("forced")
    @classmethod
    def _forced_variants_exist(cls, forced: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        variants = info.data.get("variants")
        if variants is None:  # variants were invalid themselves; that is the error to report
            return forced
        known = {variant.key for variant in variants}
        unknown = sorted({variant for variant in forced.values() if variant not in known})
        if unknown:
            raise ValueError(f"unknown variants {unknown}; the experiment has {sorted(known)}")
        return forced

    @field_validator("ramp")
    @classmethod
    def _ramp_in_time_order(cls, ramp: list[RampStep]) -> list[RampStep]:
        for earlier, later in itertools.pairwise(ramp):
            if later.at <= earlier.at:
                raise ValueError(f"steps must be in increasing time order: {later.at} follows {earlier.at}")
        return ramp

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

    def spec_fields(self) -> dict[str, object]:
        """The definition's own fields (not a stored experiment's lifecycle ones), as the models they hold."""
        return {name: getattr(self, name) for name in ExperimentSpec.model_fields}

    def segment_attributes(self, attributes: Attributes) -> dict[str, Scalar]:
        """The attributes an exposure carries: those the experiment keeps segments by (the rest stay out of
        Kafka)."""
        return {name: value for name in self.segments if (value := attributes.get(name)) is not None}

    @property
    def goal(self) -> Metric | None:
        return next((metric for metric in self.metrics if metric.role is MetricRole.GOAL), None)


class Experiment(ExperimentSpec):
    """A stored experiment: the spec plus its lifecycle, version and hashing salt."""

    status: ExperimentStatus = ExperimentStatus.DRAFT
    salt: str
    hash_version: int = HASH_VERSION
    phase: int = Field(1, ge=1)
    """Sticky assignments hold within a phase; starting a new phase lets everyone be bucketed afresh."""
    version: int = Field(1, ge=1)
    """Raised by every change; the history keeps one audit entry per version."""
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    phase_started_at: datetime | None = None
    """When the current phase began (None in phase 1: ``started_at``); the analysis counts days from it."""
    shipped_variant: Key | None = None
    ended_at: datetime | None = None
    """When it was first stopped or shipped: exposures and events from then on are not counted, so the readout of a
    finished experiment stays as it was (clients with a stale definition may go on sending them)."""
    layer_ranges: list[BucketRange] = Field(default_factory=list)
    """The buckets of the layer this experiment owns (allocated by the assignment service)."""

    @property
    def control(self) -> Variant:
        return self.variants[0]

    @property
    def weights(self) -> list[float]:
        # The spec's validator fills in every weight, so none is None here.
        return [variant.weight or 0.0 for variant in self.variants]

    def variant_keys(self) -> list[str]:
        return [v.key for v in self.variants]

    def variant(self, key: str) -> Variant | None:
        return next((variant for variant in self.variants if variant.key == key), None)

    @property
    def running_since(self) -> datetime | None:
        """The start of the current phase's data: its own start, else the experiment's."""
        return self.phase_started_at or self.started_at

    def coverage_at(self, now: datetime) -> float:
        """The coverage in force: the last ramp step at or before ``now``, else ``coverage``."""
        current = self.coverage
        for step in self.ramp:
            if step.at > now:
                break
            current = step.coverage
        return current

    def spec(self) -> ExperimentSpec:
        return ExperimentSpec.model_validate(self.spec_fields())

    @model_validator(mode="after")
    def _shipped_names_a_winner(self) -> Experiment:
        if self.status is ExperimentStatus.SHIPPED and (
            self.shipped_variant is None or self.variant(self.shipped_variant) is None
        ):
            raise ValueError(f"a shipped experiment names one of its variants as shipped_variant, not "
                             f"{self.shipped_variant!r}")
        return self
