"""The audit trail: one entry per version of an experiment, saying who changed what and when."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, JsonValue

from splitstream.auth import Caller, Scope
from splitstream.experiment import Experiment

# Bookkeeping fields that change with every version; the entry's own fields already say it.
_UNTRACKED = frozenset({"version", "updated_at"})


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    NEW_PHASE = "new_phase"
    START = "start"
    PAUSE = "pause"
    STOP = "stop"
    SHIP = "ship"


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)

    scope: Scope
    key_id: str
    """A fingerprint of the API key (never the key itself)."""

    @classmethod
    def of(cls, caller: Caller) -> Actor:
        return cls(scope=caller.scope, key_id=caller.key_id)


class Change(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    before: JsonValue
    after: JsonValue


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    experiment: str
    version: int
    at: datetime
    actor: Actor
    action: Action
    changes: dict[str, Change]
    """Field → its value before and after (JSON); every field for a creation, with ``before`` null."""


def changes_between(before: Experiment | None, after: Experiment) -> dict[str, Change]:
    new = after.model_dump(mode="json")
    old = before.model_dump(mode="json") if before is not None else {}
    return {
        field: Change(before=old.get(field), after=value)
        for field, value in new.items()
        if field not in _UNTRACKED and (before is None or old.get(field) != value)
    }


def entry_for(
    before: Experiment | None, after: Experiment, *, action: Action, caller: Caller, at: datetime
) -> AuditEntry:
    return AuditEntry(
        experiment=after.key, version=after.version, at=at, actor=Actor.of(caller), action=action,
        changes=changes_between(before, after),
    )
