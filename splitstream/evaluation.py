"""Who sees what: the one evaluation the assignment service and the SDKs share.

``Catalog.evaluate`` is pure: the definitions, the unit's attributes, the time and the unit's sticky variant (if
one was recorded in this phase) go in; a :class:`Decision` comes out. The rules, in order:

1. a stopped experiment shows everyone its control (``not_running``);
2. the unit attribute must be present (``missing_unit``);
3. a forced unit sees its forced variant (``forced``; never counted);
4. a draft or paused experiment shows everyone else its control (``not_running``);
5. every targeting condition must hold (``not_targeted``);
6. units in a holdout that applies see the control (``holdout``); those the running experiment would otherwise
   take (inside its layer share and coverage) are ``held_out``: counted in the holdout arm, the baseline of the
   campaign's total effect, so that held-out and treated units sample the same population;
7. a shipped experiment shows its winner (``shipped``; not counted);
8. a unit with a sticky variant keeps it (``sticky``), whatever the weights or coverage say now;
9. the unit must be in the experiment's share of its layer (``layer_excluded``);
10. and inside the coverage in force (``not_in_coverage``);
11. else the hash picks the variant (``hashed``).

Only ``sticky``, ``hashed`` and held-out units are in the experiment: they are the ones whose exposures are logged
(a held-out unit's under ``HOLDOUT_ARM``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from splitstream.events import Exposure
from splitstream.experiment import HOLDOUT_ARM, Experiment, ExperimentStatus, Variant
from splitstream.hashing import bucket, hash_position, in_ranges, variant_ranges
from splitstream.http_cache import body_etag
from splitstream.layers import Holdout, Layer
from splitstream.targeting import Attributes, Predicate, Scalar

USER_ID = "user_id"
LIVE_STATUSES = frozenset({ExperimentStatus.RUNNING, ExperimentStatus.SHIPPED})
"""Experiments a request without an explicit list is evaluated against."""


class Reason(StrEnum):
    FORCED = "forced"
    STICKY = "sticky"
    HASHED = "hashed"
    NOT_TARGETED = "not_targeted"
    NOT_IN_COVERAGE = "not_in_coverage"
    LAYER_EXCLUDED = "layer_excluded"
    HOLDOUT = "holdout"
    SHIPPED = "shipped"
    NOT_RUNNING = "not_running"
    MISSING_UNIT = "missing_unit"


COUNTED = frozenset({Reason.STICKY, Reason.HASHED})
# Module constants: looked up faster than the enum attributes on the hot path.
_HASHED = Reason.HASHED
_STOPPED = ExperimentStatus.STOPPED
_RUNNING = ExperimentStatus.RUNNING
_SHIPPED = ExperimentStatus.SHIPPED


class Decision(NamedTuple):
    # A named tuple rather than a frozen dataclass: it is built on every evaluation, and a frozen dataclass's
    # __init__ sets each field through object.__setattr__, several times slower.
    experiment: str
    variant: str
    payload: JsonValue
    reason: Reason
    phase: int
    unit_id: str | None
    """The id the unit was bucketed by (None when the unit attribute is missing)."""
    user_id: str
    """The request's user: exposures carry it, since events are joined to exposures by user."""
    held_out: bool = False
    """In a holdout, and otherwise in the running experiment: sees the control, counted in the holdout arm."""

    @property
    def in_experiment(self) -> bool:
        """Part of the experiment's sample: an exposure is logged for it."""
        return self.held_out or self.reason in COUNTED

    @property
    def arm(self) -> str:
        """What the unit's exposure counts in: its variant, or ``HOLDOUT_ARM`` when held out."""
        return HOLDOUT_ARM if self.held_out else self.variant

    def exposure(self, at: datetime, attributes: Mapping[str, Scalar]) -> Exposure:
        """The exposure event of a decision ``in_experiment``: one event id per unit, experiment and phase, so the
        collector counts it once however often it is sent. ``attributes``: the experiment's segment attributes."""
        return Exposure(
            type="exposure", event_id=exposure_event_id(self.experiment, self.phase, self.user_id),
            user_id=self.user_id, timestamp=at, experiment=self.experiment, variant=self.arm, phase=self.phase,
            attributes=dict(attributes),
        )


def sticky_field(experiment: str, phase: int) -> str:
    """Where a unit's sticky variant for one experiment and phase is kept (a field of the unit's sticky hash)."""
    return f"{experiment}#{phase}"


def exposure_event_id(experiment: str, phase: int, unit_id: str) -> str:
    """The same for every exposure of one unit to one experiment in one phase, so it is counted once.

    NUL cannot occur in a key or id, so distinct triples never hash the same input.
    """
    digest = hashlib.blake2b(f"{experiment}\0{phase}\0{unit_id}".encode(), digest_size=16).hexdigest()
    return f"exp-{digest}"


class CatalogDocument(BaseModel):
    """Every definition an evaluation needs, as ``GET /v1/config`` serves it to SDKs."""

    model_config = ConfigDict(frozen=True)

    experiments: list[Experiment] = Field(default_factory=list)
    layers: list[Layer] = Field(default_factory=list)
    holdouts: list[Holdout] = Field(default_factory=list)

    def canonical_json(self) -> bytes:
        """The document as served: JSON with sorted keys, so equal content gives equal bytes."""
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)

    def etag(self) -> str:
        return body_etag(self.canonical_json())


@dataclass(slots=True)
class _Compiled:
    """One experiment prepared for evaluation: everything a call needs, looked up or computed once."""

    experiment: Experiment
    status: ExperimentStatus
    phase: int
    control: Variant
    shipped: Variant | None
    forced: dict[str, str]
    salt_prefix: str
    unit: str | None
    """None: the request's user id."""
    checks: tuple[Predicate, ...]
    holdouts: tuple[Holdout, ...]
    variants: dict[str, Variant]
    layer_salt: str | None
    """None: no layer; empty: a layer the catalog lacks."""
    fixed_ranges: list[tuple[int, int, Variant]] | None
    """The variants' bucket ranges when no ramp can change the coverage."""
    ranges_by_coverage: dict[float, list[tuple[int, int, Variant]]]

    @classmethod
    def of(cls, experiment: Experiment, layers: Mapping[str, Layer], holdouts: Iterable[Holdout]) -> _Compiled:
        layer_salt = None
        if experiment.layer is not None:
            layer = layers.get(experiment.layer.key)
            layer_salt = layer.hash_salt if layer is not None else ""  # an unknown layer lets nobody in
        compiled = cls(
            experiment=experiment, status=experiment.status, phase=experiment.phase, control=experiment.variants[0],
            shipped=experiment.variant(experiment.shipped_variant) if experiment.shipped_variant else None,
            forced=dict(experiment.forced),
            salt_prefix=f"{experiment.salt}:",
            unit=None if experiment.unit == USER_ID else experiment.unit,
            checks=tuple(condition.compile() for condition in experiment.targeting),
            holdouts=tuple(holdout for holdout in holdouts if holdout.applies_to(experiment)),
            variants={variant.key: variant for variant in experiment.variants},
            layer_salt=layer_salt,
            fixed_ranges=None, ranges_by_coverage={},
        )
        if not experiment.ramp:
            compiled.fixed_ranges = compiled.ranges(experiment.coverage)
        return compiled

    def decide(
        self, reason: Reason, variant: Variant | None, unit_id: str | None, user_id: str, held_out: bool = False
    ) -> Decision:
        shown = variant or self.control
        return Decision(self.experiment.key, shown.key, shown.payload, reason, self.phase, unit_id, user_id, held_out)

    def place(self, unit_id: str, now: datetime | None) -> Variant | Reason:
        """Where the layer, the coverage in force and the hash put a unit: its variant, or why it has none."""
        if self.layer_salt is not None and (
            not self.layer_salt or not in_ranges(bucket(self.layer_salt, unit_id), self.experiment.layer_ranges)
        ):
            return Reason.LAYER_EXCLUDED
        position = hash_position(self.salt_prefix + unit_id)
        ranges = self.fixed_ranges
        if ranges is None:
            ranges = self.ranges(self.experiment.coverage_at(now or datetime.now(UTC)))
        for start, end, variant in ranges:
            if start <= position < end:
                return variant
        return Reason.NOT_IN_COVERAGE

    def ranges(self, coverage: float) -> list[tuple[int, int, Variant]]:
        found = self.ranges_by_coverage.get(coverage)
        if found is None:
            found = [
                (start, end, variant)
                for (start, end), variant in zip(
                    variant_ranges(self.experiment.weights, coverage), self.experiment.variants, strict=True
                )
            ]
            self.ranges_by_coverage[coverage] = found
        return found


class Catalog:
    """An immutable, indexed copy of the definitions; build a new one when any of them changes."""

    def __init__(self, document: CatalogDocument) -> None:
        self.document = document
        self.body = document.canonical_json()
        """What ``GET /v1/config`` serves for this catalog, serialised once."""
        self.etag = body_etag(self.body)
        layers = {layer.key: layer for layer in document.layers}
        self._compiled = {
            experiment.key: _Compiled.of(experiment, layers, document.holdouts) for experiment in document.experiments
        }
        self.live_keys = tuple(
            key for key, compiled in self._compiled.items() if compiled.status in LIVE_STATUSES
        )

    @classmethod
    def of(
        cls, experiments: Iterable[Experiment], layers: Iterable[Layer] = (), holdouts: Iterable[Holdout] = ()
    ) -> Catalog:
        return cls(CatalogDocument(experiments=list(experiments), layers=list(layers), holdouts=list(holdouts)))

    def get(self, key: str) -> Experiment | None:
        compiled = self._compiled.get(key)
        return None if compiled is None else compiled.experiment

    def unit_id(self, experiment: Experiment, user_id: str, attributes: Attributes) -> str | None:
        unit = self._compiled[experiment.key].unit
        return user_id if unit is None else _unit_id(unit, attributes)

    def evaluate(
        self, key: str, user_id: str, attributes: Attributes, now: datetime | None = None, sticky: str | None = None
    ) -> Decision:
        """The decision for one experiment (see the module docstring); ``KeyError`` if the catalog lacks it.

        ``now`` matters only to ramps; None reads the clock, and only when a ramp needs it."""
        compiled = self._compiled[key]
        unit_id = user_id if compiled.unit is None else _unit_id(compiled.unit, attributes)
        status = compiled.status
        if status is _STOPPED:
            return compiled.decide(Reason.NOT_RUNNING, None, unit_id, user_id)
        if unit_id is None:
            return compiled.decide(Reason.MISSING_UNIT, None, unit_id, user_id)
        if compiled.forced:
            forced = compiled.forced.get(unit_id)
            if forced is not None:
                return compiled.decide(Reason.FORCED, compiled.variants.get(forced), unit_id, user_id)
        if status not in LIVE_STATUSES:
            return compiled.decide(Reason.NOT_RUNNING, None, unit_id, user_id)
        for check in compiled.checks:
            if not check(attributes):
                return compiled.decide(Reason.NOT_TARGETED, None, unit_id, user_id)
        for holdout in compiled.holdouts:
            if holdout.holds(unit_id):
                # Counted only where it would otherwise be in the running experiment (never once shipped).
                held_out = status is _RUNNING and isinstance(compiled.place(unit_id, now), Variant)
                return compiled.decide(Reason.HOLDOUT, None, unit_id, user_id, held_out)
        if status is _SHIPPED:
            return compiled.decide(Reason.SHIPPED, compiled.shipped, unit_id, user_id)
        if sticky is not None:
            kept = compiled.variants.get(sticky)
            if kept is not None:
                return compiled.decide(Reason.STICKY, kept, unit_id, user_id)
        placed = compiled.place(unit_id, now)
        if isinstance(placed, Variant):
            return Decision(key, placed.key, placed.payload, _HASHED, compiled.phase, unit_id, user_id)
        return compiled.decide(placed, None, unit_id, user_id)

    def evaluate_all(
        self,
        user_id: str,
        attributes: Attributes,
        now: datetime,
        sticky: Mapping[str, str] | None = None,
        keys: Iterable[str] | None = None,
    ) -> list[Decision]:
        """Decisions for ``keys`` (default: every running or shipped experiment); ``sticky`` maps
        :func:`sticky_field` names to variant keys."""
        recorded = sticky or {}
        decisions = []
        for key in self.live_keys if keys is None else keys:
            experiment = self._compiled[key].experiment
            decisions.append(
                self.evaluate(key, user_id, attributes, now, recorded.get(sticky_field(key, experiment.phase)))
            )
        return decisions


def _unit_id(unit: str, attributes: Attributes) -> str | None:
    value = attributes.get(unit)
    if value is None or value == "":
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)
