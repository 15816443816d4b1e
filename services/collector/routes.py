"""HTTP routes of the collector."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, status

from services.collector.schemas import INGEST_REQUEST_OPENAPI, IngestResponse
from services.collector.service import IngestService
from splitstream.auth import Scope, require

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require(Scope.INGEST))],
    openapi_extra=INGEST_REQUEST_OPENAPI,
)
async def ingest_events(request: Request) -> IngestResponse:
    """202 means every accepted event is durable in Kafka; ``rejected`` lists the others by index and field."""
    ingest: IngestService = request.state.ingest
    return IngestResponse.of(await ingest.ingest(await request.body()))
