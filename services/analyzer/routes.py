"""HTTP routes of the analyzer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from services.analyzer.calculator.routes import router as calculator_router
from services.analyzer.schemas import ExperimentResults
from services.analyzer.service import ResultsService
from splitstream.auth import Scope, require

router = APIRouter(prefix="/v1", tags=["results"])


@router.get("/experiments/{key}/results", dependencies=[Depends(require(Scope.READ))])
async def experiment_results(
    request: Request,
    key: Annotated[str, Path(description="the experiment's key")],
    alpha: Annotated[
        float | None,
        Query(gt=0, lt=1, allow_inf_nan=False, description="significance level; the service's default if absent"),
    ] = None,
) -> ExperimentResults:
    """Every treatment against the control on every metric: relative lift and absolute difference with their
    1 − alpha intervals and two-sided p-values, plus the sample-ratio check. 404 for an unknown key."""
    results: ResultsService = request.state.results
    return await results.results(key, alpha)


router.include_router(calculator_router)
