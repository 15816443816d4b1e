"""Wire models of the assignment API. Experiments travel as :class:`splitstream.experiment.Experiment`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, StringConstraints

from services.assignment.service import Assignment
from splitstream.experiment import Experiment, ExperimentSpec

Salt = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]


class ExperimentCreate(ExperimentSpec):
    """An :class:`ExperimentSpec` plus an optional hashing salt (default: the key)."""

    salt: Salt | None = None

    def spec(self) -> ExperimentSpec:
        return ExperimentSpec.model_validate(self.model_dump(exclude={"salt"}))


class ExperimentList(BaseModel):
    experiments: list[Experiment]


class AssignmentResponse(BaseModel):
    experiment: str
    user_id: str
    variant: str
    in_experiment: bool
    reason: str | None
    """Why the user is not in the experiment (e.g. "experiment is draft"); null when they are."""
    exposure_logged: bool

    @classmethod
    def of(cls, assignment: Assignment) -> AssignmentResponse:
        return cls.model_validate(assignment, from_attributes=True)
