"""Experiment administration: definitions, their lifecycle, layers, holdouts, versions and the audit trail.

Every change runs under the definitions lock, makes a new version with an audit entry, is published to the
compacted definitions topic (acknowledged by Kafka), stored in Redis, and announced to every worker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from services.assignment.adapters.definitions import DefinitionStore
from services.assignment.audit import Action, AuditEntry, entry_for
from splitstream.auth import Caller
from splitstream.errors import Conflict, FieldError, InvalidRequest, NotFound
from splitstream.experiment import Experiment, ExperimentSpec, ExperimentStatus
from splitstream.hashing import BUCKETS
from splitstream.layers import Holdout, Layer, allocate, free_ranges, size, taken_in_layer


class DefinitionPublisher(Protocol):
    async def publish(self, experiment: Experiment, entry: AuditEntry) -> None: ...


class Reloadable(Protocol):
    async def reload(self) -> object: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


_TRANSITIONS: dict[Action, tuple[frozenset[ExperimentStatus], ExperimentStatus]] = {
    Action.START: (frozenset({ExperimentStatus.DRAFT, ExperimentStatus.PAUSED}), ExperimentStatus.RUNNING),
    Action.PAUSE: (frozenset({ExperimentStatus.RUNNING}), ExperimentStatus.PAUSED),
    Action.STOP: (
        frozenset(ExperimentStatus) - {ExperimentStatus.STOPPED},
        ExperimentStatus.STOPPED,
    ),
    Action.SHIP: (
        frozenset(ExperimentStatus) - {ExperimentStatus.DRAFT},
        ExperimentStatus.SHIPPED,
    ),
}


class Administration:
    def __init__(
        self,
        store: DefinitionStore,
        publisher: DefinitionPublisher,
        catalog: Reloadable,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._catalog = catalog
        self._clock = clock

    async def create(self, spec: ExperimentSpec, caller: Caller, salt: str | None = None) -> Experiment:
        """Store ``spec`` as a draft (version 1); the salt defaults to the key."""
        async with self._store.locked():
            if await self._store.experiment(spec.key) is not None:
                raise Conflict(f"experiment {spec.key!r} already exists", [FieldError("key", "already exists")])
            await self._check_holdouts(spec)
            now = self._clock()
            experiment = Experiment.model_validate({
                **spec.spec_fields(), "status": ExperimentStatus.DRAFT, "salt": salt or spec.key,
                "created_at": now, "updated_at": now, "layer_ranges": await self._layer_ranges(spec, None),
            })
            entry = entry_for(None, experiment, action=Action.CREATE, caller=caller, at=now)
            await self._publisher.publish(experiment, entry)
            if not await self._store.create_experiment(experiment, entry):
                raise Conflict(f"experiment {spec.key!r} already exists", [FieldError("key", "already exists")])
        await self._announce(experiment.key)
        return experiment

    async def update(self, key: str, spec: ExperimentSpec, caller: Caller, *, new_phase: bool) -> Experiment:
        """Replace the definition. Weights, coverage, ramp, targeting and metrics may change while running (sticky
        users keep their variant); changing the variants or the layer of a started experiment needs a new phase."""
        if spec.key != key:
            raise InvalidRequest("the body's key differs from the path's", [FieldError("body.key", f"must be {key!r}")])
        async with self._store.locked():
            current = await self._existing(key)
            if current.status in {ExperimentStatus.STOPPED, ExperimentStatus.SHIPPED}:
                raise Conflict(f"experiment {key!r} is {current.status.value}; create a new one",
                               [FieldError("status", f"a {current.status.value} experiment cannot change")])
            started = current.status is not ExperimentStatus.DRAFT
            if started and not new_phase:
                _refuse_unless_new_phase(current, spec)
            await self._check_holdouts(spec)
            ranges = current.layer_ranges if spec.layer == current.layer else await self._layer_ranges(spec, key)
            updated = Experiment.model_validate({
                **current.model_dump(), **spec.spec_fields(), "layer_ranges": ranges,
                "phase": current.phase + 1 if new_phase else current.phase,
                "phase_started_at": self._clock() if new_phase else current.phase_started_at,
            })
            return await self._commit(current, updated, Action.NEW_PHASE if new_phase else Action.UPDATE, caller)

    async def transition(self, key: str, action: Action, caller: Caller, *, variant: str | None = None) -> Experiment:
        """start / pause / stop / ship (``variant`` names the winner); asking for the current status is a no-op."""
        allowed, target = _TRANSITIONS[action]
        async with self._store.locked():
            current = await self._existing(key)
            if action is Action.SHIP and (variant is None or current.variant(variant) is None):
                raise InvalidRequest(f"no variant {variant!r} to ship",
                                     [FieldError("body.variant", f"one of {current.variant_keys()}")])
            if current.status is target and (action is not Action.SHIP or current.shipped_variant == variant):
                return current
            if current.status not in allowed:
                needed = sorted(status.value for status in allowed)
                raise Conflict(f"cannot {action.value} a {current.status.value} experiment",
                               [FieldError("status", f"{action.value} needs one of {needed}")])
            changes: dict[str, object] = {"status": target}
            if action is Action.SHIP:
                changes["shipped_variant"] = variant
            if action is Action.START and current.started_at is None:
                changes["started_at"] = self._clock()
            if action in (Action.STOP, Action.SHIP) and current.ended_at is None:
                changes["ended_at"] = self._clock()
            moved = current.model_copy(update=changes)
            return await self._commit(current, moved, action, caller)

    async def get(self, key: str) -> Experiment:
        return await self._existing(key, field="key")

    async def list_all(self) -> list[Experiment]:
        return await self._store.experiments()

    async def history(self, key: str) -> list[AuditEntry]:
        await self._existing(key, field="key")
        return await self._store.history(key)

    async def create_layer(self, layer: Layer) -> Layer:
        stamped = layer.model_copy(update={"created_at": self._clock()})
        if not await self._store.create_layer(stamped):
            raise Conflict(f"layer {layer.key!r} already exists", [FieldError("body.key", "already exists")])
        await self._announce(layer.key)
        return stamped

    async def layers(self) -> list[Layer]:
        return await self._store.layers()

    async def create_holdout(self, holdout: Holdout) -> Holdout:
        stamped = holdout.model_copy(update={"created_at": self._clock()})
        if not await self._store.create_holdout(stamped):
            raise Conflict(f"holdout {holdout.key!r} already exists", [FieldError("body.key", "already exists")])
        await self._announce(holdout.key)
        return stamped

    async def holdouts(self) -> list[Holdout]:
        return await self._store.holdouts()

    async def _commit(self, current: Experiment, changed: Experiment, action: Action, caller: Caller) -> Experiment:
        now = self._clock()
        stored = changed.model_copy(update={"version": current.version + 1, "updated_at": now})
        entry = entry_for(current, stored, action=action, caller=caller, at=now)
        await self._publisher.publish(stored, entry)
        await self._store.replace_experiment(stored, current, entry)
        await self._announce(stored.key)
        return stored

    async def _announce(self, key: str) -> None:
        await self._store.announce(key)
        await self._catalog.reload()  # this worker sees its own change at once

    async def _existing(self, key: str, *, field: str = "key") -> Experiment:
        experiment = await self._store.experiment(key)
        if experiment is None:
            raise NotFound(f"no experiment {key!r}", [FieldError(field, "no experiment with this key")])
        return experiment

    async def _check_holdouts(self, spec: ExperimentSpec) -> None:
        known = {holdout.key for holdout in await self._store.holdouts()}
        for index, holdout in enumerate(spec.holdouts):
            if holdout not in known:
                raise InvalidRequest(f"no holdout {holdout!r}",
                                     [FieldError(f"body.holdouts.{index}", "no holdout with this key")])

    async def _layer_ranges(self, spec: ExperimentSpec, own_key: str | None) -> list[tuple[int, int]]:
        if spec.layer is None:
            return []
        if spec.layer.key not in {layer.key for layer in await self._store.layers()}:
            raise InvalidRequest(f"no layer {spec.layer.key!r}",
                                 [FieldError("body.layer.key", "no layer with this key; create it first")])
        taken = taken_in_layer(spec.layer.key, await self._store.experiments(), excluding=own_key)
        granted = allocate(spec.layer.share, taken)
        if granted is None:
            free = size(free_ranges(taken)) / BUCKETS
            raise InvalidRequest(
                f"layer {spec.layer.key!r} is over-committed",
                [FieldError("body.layer.share", f"only {free:.2%} of the layer is free, {spec.layer.share:.2%} asked")],
            )
        return granted


def _refuse_unless_new_phase(current: Experiment, spec: ExperimentSpec) -> None:
    if [variant.key for variant in spec.variants] != current.variant_keys():
        raise InvalidRequest("changing the variants of a started experiment starts a new phase",
                             [FieldError("body.variants", "send new_phase=true to change the variants")])
    if spec.layer != current.layer:
        raise InvalidRequest("moving a started experiment to another layer slice starts a new phase",
                             [FieldError("body.layer", "send new_phase=true to change the layer")])
    if spec.unit != current.unit:
        raise InvalidRequest("changing the unit of a started experiment starts a new phase",
                             [FieldError("body.unit", "send new_phase=true to change the unit")])
