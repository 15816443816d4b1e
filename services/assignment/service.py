"""The hot path: which variant a user sees in each experiment, and the exposures that record it.

Definitions come from the in-memory catalog (no Redis read); the only round trip is the sticky lookup, one
pipelined call for all experiments of the request, skipped entirely for units whose sticky records are cached.
Exposures are deduplicated per unit, experiment and phase: a sticky record whose exposure was logged means there is
nothing left to log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from services.assignment.adapters.sticky import StickyKey, StickyValue
from splitstream.errors import DependencyUnavailable, FieldError, NotFound
from splitstream.evaluation import Catalog, Decision, Reason, sticky_field
from splitstream.events import Exposure
from splitstream.experiment import Experiment, ExperimentStatus
from splitstream.targeting import Attributes

log = structlog.get_logger(__name__)


class ExposurePublisher(Protocol):
    async def publish(self, events: Sequence[Exposure]) -> None:
        """Return only once the events are durable; raise ``DependencyUnavailable`` otherwise."""


class StickyRecords(Protocol):
    """:class:`services.assignment.adapters.sticky.StickyStore` in production."""

    async def lookup(self, wanted: Sequence[StickyKey]) -> dict[StickyKey, StickyValue]: ...

    async def record(self, first: Mapping[StickyKey, StickyValue], now_logged: Mapping[StickyKey, str]) -> None: ...


class CatalogSource(Protocol):
    @property
    def current(self) -> Catalog: ...

    @property
    def loaded(self) -> bool:
        """False until the definitions were read once: before that, an empty catalog would mislead."""


@dataclass(frozen=True, slots=True)
class Assignment:
    decision: Decision
    exposure_logged: bool
    exposure: Exposure | None
    """For a counted decision whose exposure was not logged: the event to send when the payload is shown."""


@dataclass(frozen=True, slots=True)
class AssignOutcome:
    assignments: list[Assignment]
    repeatable: bool
    """Asked again against the same catalog, the same request would get the same answer and change nothing: every
    sticky record was read (none missing from a failed lookup), there is no exposure to log or to hand back and no
    sticky record to write, and no experiment asked about has a ramp step still ahead (the only way the clock
    moves a decision)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AssignmentService:
    def __init__(
        self,
        catalog: CatalogSource,
        sticky: StickyRecords,
        publisher: ExposurePublisher,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._catalog = catalog
        self._sticky = sticky
        self._publisher = publisher
        self._clock = clock

    @property
    def catalog(self) -> Catalog:
        """The definitions answers are made from now: a new object whenever any definition changes."""
        return self._catalog.current

    async def assign(
        self,
        user_id: str,
        attributes: Attributes,
        experiments: Sequence[str] | None = None,
        *,
        log_exposure: bool = True,
        field: str = "experiments",
    ) -> AssignOutcome:
        """Decisions for ``experiments`` (default: every running or shipped one), and whether the answer may be
        given again as it is. With ``log_exposure`` the exposures of counted decisions are in Kafka before this
        returns."""
        if not self._catalog.loaded:
            raise DependencyUnavailable("redis: experiment definitions not loaded yet")
        catalog = self._catalog.current
        chosen = _known(catalog, experiments, field)
        wanted = {
            experiment.key: StickyKey(experiment.unit, unit_id, sticky_field(experiment.key, experiment.phase))
            for experiment in chosen
            if experiment.status is ExperimentStatus.RUNNING
            and (unit_id := catalog.unit_id(experiment, user_id, attributes)) is not None
        }
        recorded, read = await self._recorded(list(wanted.values()))
        now = self._clock()
        decisions = []
        for experiment in chosen:
            key = wanted.get(experiment.key)
            value = recorded.get(key) if key is not None else None
            decisions.append(
                catalog.evaluate(experiment.key, user_id, attributes, now, value.variant if value else None)
            )

        first: dict[StickyKey, StickyValue] = {}
        now_logged: dict[StickyKey, str] = {}
        to_log: list[Exposure] = []
        assignments = []
        for experiment, decision in zip(chosen, decisions, strict=True):
            if not decision.in_experiment:
                assignments.append(Assignment(decision, exposure_logged=False, exposure=None))
                continue
            key = wanted[decision.experiment]
            value = recorded.get(key)
            # A held-out unit's record holds the arm, so that its exposure too is logged once.
            already_logged = (
                (decision.reason is Reason.STICKY or decision.held_out) and value is not None
                and value.exposure_logged and value.variant == decision.arm
            )
            exposure = None
            if not already_logged:  # a returning unit's exposure is in Kafka already: nothing to build
                exposure = decision.exposure(now, experiment.segment_attributes(attributes))
            if decision.reason is Reason.HASHED or (decision.held_out and value is None):
                first[key] = StickyValue(decision.arm, exposure_logged=log_exposure)
            elif log_exposure and not already_logged:
                now_logged[key] = decision.arm
            if log_exposure and exposure is not None:
                to_log.append(exposure)
            assignments.append(Assignment(
                decision, exposure_logged=already_logged or (log_exposure and exposure is not None),
                exposure=None if log_exposure else exposure,
            ))
        if to_log:
            await self._publisher.publish(to_log)
        if first or now_logged:
            await self._remember(first, now_logged)
        repeatable = (
            read and not to_log and not first and not now_logged
            and all(assignment.exposure is None for assignment in assignments)
            and not any(_ramps_after(experiment, now) for experiment in chosen)
        )
        return AssignOutcome(assignments, repeatable)

    async def _recorded(self, wanted: list[StickyKey]) -> tuple[dict[StickyKey, StickyValue], bool]:
        """The sticky records found, and whether they could be read."""
        if not wanted:
            return {}, True
        try:
            return await self._sticky.lookup(wanted), True
        except (RedisError, OSError) as error:
            # Assignment stays up without Redis: users are hashed (the same variant unless weights changed) and
            # their exposures logged again, which the collector deduplicates by event id.
            log.warning("sticky lookup failed; hashing without it", error=repr(error))
            return {}, False

    async def _remember(self, first: dict[StickyKey, StickyValue], now_logged: dict[StickyKey, str]) -> None:
        try:
            await self._sticky.record(first, now_logged)
        except (RedisError, OSError) as error:
            log.warning("sticky record failed", error=repr(error))


def _ramps_after(experiment: Experiment, now: datetime) -> bool:
    return bool(experiment.ramp) and experiment.ramp[-1].at > now


def _known(catalog: Catalog, keys: Sequence[str] | None, field: str) -> list[Experiment]:
    if keys is None:
        return [experiment for key in catalog.live_keys if (experiment := catalog.get(key)) is not None]
    found = []
    for index, key in enumerate(keys):
        experiment = catalog.get(key)
        if experiment is None:
            location = field if field == "experiment" else f"{field}.{index}"
            raise NotFound(f"no experiment {key!r}", [FieldError(location, "no experiment with this key")])
        found.append(experiment)
    return found
