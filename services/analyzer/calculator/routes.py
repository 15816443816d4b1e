"""``/v1/stats/*`` (mounted under the analyzer's ``/v1``): stateless calculations on statistics in the body."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.analyzer.calculator import service
from services.analyzer.calculator.schemas import (
    AdjustRequest,
    AdjustResponse,
    CompareRequest,
    CompareResponse,
    PowerRequest,
    PowerResponse,
    SrmRequest,
    SrmResponse,
)
from splitstream.auth import Scope, require

router = APIRouter(prefix="/stats", tags=["calculator"], dependencies=[Depends(require(Scope.READ))])


@router.post("/compare")
async def compare(body: CompareRequest) -> CompareResponse:
    """Each variant after the first against the first (the control), by the requested method and scale."""
    return service.compare_variants(body)


@router.post("/srm")
async def srm(body: SrmRequest) -> SrmResponse:
    """Sample-ratio mismatch: χ² goodness of fit of the counts against the weights."""
    return service.sample_ratio(body)


@router.post("/adjust")
async def adjust(body: AdjustRequest) -> AdjustResponse:
    """Holm (family-wise error) or Benjamini–Hochberg (false discovery rate) adjusted p-values, in input order."""
    return service.adjust(body)


@router.post("/power", response_model_exclude_none=True)
async def power(body: PowerRequest) -> PowerResponse:
    """Users per variant to detect the relative MDE, and days to reach them when daily_users is given."""
    return service.power(body)
