"""HTTP routes of the assignment service: experiment administration, assignment and the SDK config."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from services.assignment.admin import Administration
from services.assignment.audit import Action
from services.assignment.catalog_feed import CatalogFeed
from services.assignment.schemas import (
    ExperimentCreate,
    ExperimentList,
    ExperimentUpdate,
    History,
    HoldoutList,
    LayerList,
    ShipRequest,
)
from services.assignment.service import AssignmentService
from splitstream.auth import Scope, caller, require
from splitstream.evaluation import CatalogDocument
from splitstream.experiment import Experiment, Key
from splitstream.http_cache import json_with_etag
from splitstream.layers import Holdout, Layer

router = APIRouter(prefix="/v1")

ExperimentKey = Annotated[Key, Path(description="the experiment's key")]
ADMIN = [Depends(require(Scope.ADMIN))]
READ = [Depends(require(Scope.READ))]
INGEST = [Depends(require(Scope.INGEST))]


def _admin(request: Request) -> Administration:
    admin: Administration = request.state.admin
    return admin


def _assignments(request: Request) -> AssignmentService:
    service: AssignmentService = request.state.assignments
    return service


@router.post("/experiments", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, tags=["experiments"])
async def create_experiment(request: Request, body: ExperimentCreate) -> Experiment:
    """Store a draft (version 1); 409 if the key is taken, 422 naming the field for an invalid definition."""
    return await _admin(request).create(body.spec(), caller(request), salt=body.salt)


@router.get("/experiments", dependencies=READ, tags=["experiments"])
async def list_experiments(request: Request) -> ExperimentList:
    return ExperimentList(experiments=await _admin(request).list_all())


@router.get("/experiments/{key}", dependencies=READ, tags=["experiments"])
async def get_experiment(request: Request, key: ExperimentKey) -> Experiment:
    return await _admin(request).get(key)


@router.put("/experiments/{key}", dependencies=ADMIN, tags=["experiments"])
async def update_experiment(request: Request, key: ExperimentKey, body: ExperimentUpdate) -> Experiment:
    """Replace the definition (a new version); see ``new_phase``."""
    return await _admin(request).update(key, body.spec(), caller(request), new_phase=body.new_phase)


@router.get("/experiments/{key}/history", dependencies=READ, tags=["experiments"])
async def experiment_history(request: Request, key: ExperimentKey) -> History:
    """One audit entry per version, oldest first: who (key scope and fingerprint), when, what changed."""
    return History(experiment=key, entries=await _admin(request).history(key))


@router.post("/experiments/{key}/start", dependencies=ADMIN, tags=["experiments"])
async def start_experiment(request: Request, key: ExperimentKey) -> Experiment:
    """draft or paused → running; already running is fine; 409 once stopped or shipped."""
    return await _admin(request).transition(key, Action.START, caller(request))


@router.post("/experiments/{key}/pause", dependencies=ADMIN, tags=["experiments"])
async def pause_experiment(request: Request, key: ExperimentKey) -> Experiment:
    return await _admin(request).transition(key, Action.PAUSE, caller(request))


@router.post("/experiments/{key}/stop", dependencies=ADMIN, tags=["experiments"])
async def stop_experiment(request: Request, key: ExperimentKey) -> Experiment:
    return await _admin(request).transition(key, Action.STOP, caller(request))


@router.post("/experiments/{key}/ship", dependencies=ADMIN, tags=["experiments"])
async def ship_experiment(request: Request, key: ExperimentKey, body: ShipRequest) -> Experiment:
    """Everyone targeted (outside the holdouts) sees ``variant`` from now on; nobody is counted any more."""
    return await _admin(request).transition(key, Action.SHIP, caller(request), variant=body.variant)


@router.post("/layers", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, tags=["layers"])
async def create_layer(request: Request, body: Layer) -> Layer:
    return await _admin(request).create_layer(body)


@router.get("/layers", dependencies=READ, tags=["layers"])
async def list_layers(request: Request) -> LayerList:
    return LayerList(layers=await _admin(request).layers())


@router.post("/holdouts", status_code=status.HTTP_201_CREATED, dependencies=ADMIN, tags=["holdouts"])
async def create_holdout(request: Request, body: Holdout) -> Holdout:
    return await _admin(request).create_holdout(body)


@router.get("/holdouts", dependencies=READ, tags=["holdouts"])
async def list_holdouts(request: Request) -> HoldoutList:
    return HoldoutList(holdouts=await _admin(request).holdouts())


@router.get("/config", dependencies=INGEST, tags=["assignment"], response_model=CatalogDocument)
async def config(request: Request) -> Response:
    """Every definition, for SDKs evaluating locally. Send the ETag back in ``If-None-Match`` to get a 304."""
    feed: CatalogFeed = request.state.catalog
    catalog = feed.current
    return json_with_etag(
        request, catalog.body, cache_control="no-cache", etag=catalog.etag
    )
