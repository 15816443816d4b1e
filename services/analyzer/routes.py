"""HTTP routes of the analyzer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.analyzer.adapters.snapshots import Snapshot
from services.analyzer.calculator.routes import router as calculator_router
from services.analyzer.schemas import ExperimentResults, ExperimentSummaries, SegmentResults, Timeseries
from services.analyzer.service import Overrides, ResultsService
from services.analyzer.timeseries import TimeseriesService
from splitstream.auth import Scope, require
from splitstream.experiment import AnalysisMethod, Difference
from splitstream.http_cache import json_with_etag
from splitstream.targeting import AttributeName

router = APIRouter(prefix="/v1", tags=["results"])

RESULTS_CACHE_CONTROL = "private, max-age=1"
"""Results move within a second of an event: a dashboard may reuse an answer for a second, then revalidate."""


def _results(request: Request) -> ResultsService:
    service: ResultsService = request.state.results
    return service


@router.get("/experiments", dependencies=[Depends(require(Scope.READ))])
async def list_experiments(request: Request) -> ExperimentSummaries:
    """Every experiment, running or finished, with its phase, users per variant, sample-ratio check and calls."""
    return ExperimentSummaries(experiments=await _results(request).summaries())


@router.get(
    "/experiments/{key}/results", dependencies=[Depends(require(Scope.READ))],
    response_model=ExperimentResults | SegmentResults,
)
async def experiment_results(
    request: Request,
    key: Annotated[str, Path(description="the experiment's key")],
    alpha: Annotated[
        float | None,
        Query(gt=0, lt=1, allow_inf_nan=False, description="significance level; the plan's if absent"),
    ] = None,
    method: Annotated[
        AnalysisMethod | None,
        Query(description="read by frequentist, bayesian or sequential instead of the plan's method"),
    ] = None,
    difference: Annotated[
        Difference | None,
        Query(description="lead with the relative lift or the absolute difference instead of the plan's choice"),
    ] = None,
    cuped: Annotated[
        bool | None,
        Query(description="CUPED on or off for every metric instead of each metric's own setting"),
    ] = None,
    segment: Annotated[
        AttributeName | None,
        Query(description="one of the experiment's segment dimensions: the results within each of its values"),
    ] = None,
) -> Response:
    """Every treatment against the control on every metric: relative lift and absolute difference with their
    1 − alpha intervals and two-sided p-values, plus the sample-ratio check. 404 for an unknown key. The answer
    carries an ETag: send it back in ``If-None-Match`` to get a 304 while nothing changed."""
    service = _results(request)
    overrides = Overrides(method=method, difference=difference, cuped=cuped)
    if segment is not None:
        segments = await service.segments(key, segment, alpha, overrides)
        return json_with_etag(request, segments.model_dump_json().encode(), cache_control=RESULTS_CACHE_CONTROL)
    results = await service.results(key, alpha, overrides)
    return json_with_etag(request, results.model_dump_json().encode(), cache_control=RESULTS_CACHE_CONTROL)


def _timeseries(request: Request) -> TimeseriesService:
    service: TimeseriesService = request.state.timeseries
    return service


@router.get("/experiments/{key}/timeseries", dependencies=[Depends(require(Scope.READ))])
async def experiment_timeseries(
    request: Request,
    key: Annotated[str, Path(description="the experiment's key")],
    alpha: Annotated[float | None, Query(gt=0, lt=1, allow_inf_nan=False)] = None,
) -> Timeseries:
    """The cumulative effect of every treatment on every metric, with its interval, at each snapshot of the
    current phase (hourly, and whenever one is asked for), oldest first."""
    return await _timeseries(request).series(key, alpha)


@router.post("/experiments/{key}/snapshots", dependencies=[Depends(require(Scope.ADMIN))], status_code=201)
async def take_snapshot(request: Request, key: Annotated[str, Path(description="the experiment's key")]) -> Snapshot:
    """Snapshot the experiment's statistics now (a point of the time series)."""
    return await _timeseries(request).take(key)


router.include_router(calculator_router)
