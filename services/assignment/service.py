"""Experiment lifecycle and assignment: which variant a user sees, and the exposure that records it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from cachetools import TTLCache

from splitstream.errors import Conflict, FieldError, NotFound
from splitstream.events import Exposure
from splitstream.experiment import Experiment, ExperimentSpec, ExperimentStatus, Variant
from splitstream.hashing import assign


class ExperimentStore(Protocol):
    async def create(self, experiment: Experiment) -> bool:
        """Store a new experiment; False if its key is taken."""

    async def replace(self, experiment: Experiment) -> None: ...

    async def get(self, key: str) -> Experiment | None: ...

    async def get_all(self) -> list[Experiment]: ...


class ExposurePublisher(Protocol):
    async def publish(self, events: Sequence[Exposure]) -> None:
        """Return only once the events are durable; raise ``DependencyUnavailable`` otherwise."""


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    user_id: str
    variant: str
    in_experiment: bool
    reason: str | None
    exposure_logged: bool


def exposure_event_id(experiment: str, user_id: str) -> str:
    """The same for every exposure of one user to one experiment, so the collector counts the user once.

    NUL cannot occur in an experiment key, so distinct (experiment, user) pairs never hash the same input.
    """
    digest = hashlib.blake2b(f"{experiment}\0{user_id}".encode(), digest_size=16).hexdigest()
    return f"exp-{digest}"


def variant_for(experiment: Experiment, user_id: str) -> Variant:
    return experiment.variants[assign(experiment.salt, user_id, experiment.weights)]


def started(experiment: Experiment, now: datetime) -> Experiment:
    """draft → running (stamping ``started_at``); running stays as it is; stopped cannot come back."""
    if experiment.status is ExperimentStatus.RUNNING:
        return experiment
    if experiment.status is ExperimentStatus.STOPPED:
        raise Conflict(
            f"experiment {experiment.key!r} is stopped and cannot be started again",
            [FieldError("status", "a stopped experiment cannot restart; create a new experiment")],
        )
    return experiment.model_copy(update={"status": ExperimentStatus.RUNNING, "started_at": now})


def stopped(experiment: Experiment) -> Experiment:
    """Any status → stopped; stopping twice changes nothing."""
    if experiment.status is ExperimentStatus.STOPPED:
        return experiment
    return experiment.model_copy(update={"status": ExperimentStatus.STOPPED})


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AssignmentService:
    def __init__(
        self,
        store: ExperimentStore,
        publisher: ExposurePublisher,
        *,
        cache_seconds: float,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock
        if cache_seconds < 0:
            raise ValueError("cache_seconds must be >= 0")
        self._cache_seconds = cache_seconds
        self._definitions: TTLCache[str, Experiment] = TTLCache(maxsize=10_000, ttl=cache_seconds, timer=monotonic)

    async def create(self, spec: ExperimentSpec, salt: str | None = None) -> Experiment:
        """Store ``spec`` as a draft; the salt defaults to the key, so equal keys hash users alike."""
        fields = {name: getattr(spec, name) for name in ExperimentSpec.model_fields}
        experiment = Experiment.model_validate(
            {**fields, "status": ExperimentStatus.DRAFT, "salt": salt or spec.key, "created_at": self._clock()}
        )
        if not await self._store.create(experiment):
            raise Conflict(f"experiment {spec.key!r} already exists", [FieldError("key", "already exists")])
        return experiment

    async def list_all(self) -> list[Experiment]:
        return await self._store.get_all()

    async def get(self, key: str) -> Experiment:
        return await self._read(key, field="key")

    async def start(self, key: str) -> Experiment:
        return await self._move(key, lambda experiment: started(experiment, self._clock()))

    async def stop(self, key: str) -> Experiment:
        return await self._move(key, stopped)

    async def assign(self, experiment_key: str, user_id: str, *, log_exposure: bool = True) -> Assignment:
        """The user's variant; for a running experiment, the exposure is in Kafka before this returns."""
        experiment = await self._definition(experiment_key)
        if experiment.status is not ExperimentStatus.RUNNING:
            return Assignment(
                experiment=experiment.key, user_id=user_id, variant=experiment.control.key, in_experiment=False,
                reason=f"experiment is {experiment.status.value}", exposure_logged=False,
            )
        variant = variant_for(experiment, user_id)
        if log_exposure:
            exposure = Exposure(
                type="exposure", event_id=exposure_event_id(experiment.key, user_id), user_id=user_id,
                timestamp=self._clock(), experiment=experiment.key, variant=variant.key,
            )
            await self._publisher.publish([exposure])
        return Assignment(
            experiment=experiment.key, user_id=user_id, variant=variant.key, in_experiment=True, reason=None,
            exposure_logged=log_exposure,
        )

    async def _read(self, key: str, *, field: str) -> Experiment:
        experiment = await self._store.get(key)
        if experiment is None:
            raise NotFound(f"no experiment {key!r}", [FieldError(field, "no experiment with this key")])
        return experiment

    async def _definition(self, key: str) -> Experiment:
        # Only found experiments are cached: the cache stays as small as the registry, and an experiment
        # created on another instance is visible at once.
        cached = self._definitions.get(key)
        if cached is not None:
            return cached
        experiment = await self._read(key, field="experiment")
        self._remember(experiment)
        return experiment

    def _remember(self, experiment: Experiment) -> None:
        if self._cache_seconds > 0:
            self._definitions[experiment.key] = experiment

    async def _move(self, key: str, transition: Callable[[Experiment], Experiment]) -> Experiment:
        current = await self._read(key, field="key")
        moved = transition(current)
        if moved is not current:
            await self._store.replace(moved)
        self._remember(moved)
        return moved
