"""Wire models of the assignment API. Experiments travel as :class:`splitstream.experiment.Experiment`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, StringConstraints, TypeAdapter

from services.assignment.audit import AuditEntry
from services.assignment.service import Assignment
from splitstream.experiment import Experiment, ExperimentSpec, Key, UserId
from splitstream.layers import Holdout, Layer
from splitstream.targeting import AttributeName, AttributeValue

Salt = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]


class ExperimentCreate(ExperimentSpec):
    """An :class:`ExperimentSpec` plus an optional hashing salt (default: the key)."""

    salt: Salt | None = None

    def spec(self) -> ExperimentSpec:
        return ExperimentSpec.model_validate(self.model_dump(exclude={"salt"}))


class ExperimentUpdate(ExperimentSpec):
    """The whole new definition. ``new_phase`` lets everyone be bucketed afresh (sticky assignments reset, the
    analysis restarts); it is required to change the variants, the layer or the unit of a started experiment."""

    new_phase: bool = False

    def spec(self) -> ExperimentSpec:
        return ExperimentSpec.model_validate(self.model_dump(exclude={"new_phase"}))


class ShipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: Key
    """The winner, which every targeted user outside the holdouts then sees."""


class ExperimentList(BaseModel):
    experiments: list[Experiment]


class LayerList(BaseModel):
    layers: list[Layer]


class HoldoutList(BaseModel):
    holdouts: list[Holdout]


class History(BaseModel):
    experiment: str
    entries: list[AuditEntry]


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=100)
    experiments: list[Key] | None = Field(None, max_length=200)
    """Default: every running or shipped experiment."""
    log_exposure: bool = True


MAX_ASSIGN_BODY_BYTES = 64 * 1024
ASSIGN_REQUEST = TypeAdapter(AssignRequest)
def _attribute_pair(pair: str) -> str:
    name, separator, _ = pair.partition(":")
    if not separator or not name:
        raise ValueError("expected name:value")
    return pair


class AssignQuery(BaseModel):
    """The query of ``GET /v1/assign``: one experiment, attributes as repeated ``attr=name:value``."""

    experiment: Key
    user_id: UserId
    attr: list[Annotated[str, AfterValidator(_attribute_pair)]] = Field(default_factory=list, max_length=100)
    log_exposure: bool = True

    def attribute_map(self) -> dict[str, str]:
        return dict(pair.split(":", 1) for pair in self.attr)


class AssignmentOut(BaseModel):
    experiment: str
    variant: str
    payload: JsonValue
    in_experiment: bool
    """Counted in the experiment's analysis (reason ``hashed`` or ``sticky``)."""
    reason: str
    phase: int
    exposure_logged: bool
    exposure: dict[str, Any] | None
    """With ``log_exposure=false``: the exposure to send to the collector when the payload is actually shown."""


class AssignResponse(BaseModel):
    user_id: str
    assignments: list[AssignmentOut]


class SingleAssignment(AssignmentOut):
    user_id: str


def wire_assignment(assignment: Assignment) -> dict[str, Any]:
    """An :class:`AssignmentOut` as a plain dict (built by hand: this runs on every call of the hot path)."""
    decision, exposure = assignment.decision, assignment.exposure
    return {
        "experiment": decision.experiment, "variant": decision.variant, "payload": decision.payload,
        "in_experiment": decision.in_experiment, "reason": decision.reason.value, "phase": decision.phase,
        "exposure_logged": assignment.exposure_logged,
        "exposure": None if exposure is None else exposure.model_dump(mode="json", exclude={"received_at"}),
    }


