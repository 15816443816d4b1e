"""HTTP routes of the assignment service: experiment administration and /v1/assign."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status

from services.assignment.schemas import AssignmentResponse, ExperimentCreate, ExperimentList
from services.assignment.service import AssignmentService
from splitstream.auth import Scope, require
from splitstream.events import UserId
from splitstream.experiment import Experiment, Key

router = APIRouter(prefix="/v1")

ExperimentKey = Annotated[Key, Path(description="the experiment's key")]


def _service(request: Request) -> AssignmentService:
    service: AssignmentService = request.state.assignments
    return service


@router.post(
    "/experiments", status_code=status.HTTP_201_CREATED, dependencies=[Depends(require(Scope.ADMIN))],
    tags=["experiments"],
)
async def create_experiment(request: Request, body: ExperimentCreate) -> Experiment:
    """Store a draft experiment; 409 if the key is taken."""
    return await _service(request).create(body.spec(), salt=body.salt)


@router.get("/experiments", dependencies=[Depends(require(Scope.READ))], tags=["experiments"])
async def list_experiments(request: Request) -> ExperimentList:
    return ExperimentList(experiments=await _service(request).list_all())


@router.get("/experiments/{key}", dependencies=[Depends(require(Scope.READ))], tags=["experiments"])
async def get_experiment(request: Request, key: ExperimentKey) -> Experiment:
    return await _service(request).get(key)


@router.post("/experiments/{key}/start", dependencies=[Depends(require(Scope.ADMIN))], tags=["experiments"])
async def start_experiment(request: Request, key: ExperimentKey) -> Experiment:
    """draft → running; already running is fine; 409 once stopped."""
    return await _service(request).start(key)


@router.post("/experiments/{key}/stop", dependencies=[Depends(require(Scope.ADMIN))], tags=["experiments"])
async def stop_experiment(request: Request, key: ExperimentKey) -> Experiment:
    return await _service(request).stop(key)


@router.get("/assign", dependencies=[Depends(require(Scope.INGEST))], tags=["assignment"])
async def assign(
    request: Request,
    experiment: Annotated[Key, Query(description="the experiment's key")],
    user_id: Annotated[UserId, Query(description="the stable id the user is bucketed by")],
    log_exposure: Annotated[bool, Query(description="record the exposure in Kafka before answering")] = True,
) -> AssignmentResponse:
    """The user's variant. With ``log_exposure`` a 200 means the exposure is durable in Kafka; 503 if it is not."""
    assignment = await _service(request).assign(experiment, user_id, log_exposure=log_exposure)
    return AssignmentResponse.of(assignment)
