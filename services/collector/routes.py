"""HTTP routes of the collector."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, status

from services.collector.config import CollectorSettings
from services.collector.schemas import INGEST_REQUEST_OPENAPI, IngestResponse
from services.collector.service import IngestService
from splitstream.auth import Scope, require
from splitstream.body import read_body

router = APIRouter(prefix="/v1", tags=["events"])
_EVENTS = "/events"
INGEST_PATH = router.prefix + _EVENTS


@router.post(
    _EVENTS,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require(Scope.INGEST))],
    openapi_extra=INGEST_REQUEST_OPENAPI,
)
async def ingest_events(request: Request) -> IngestResponse:
    """202 means every accepted event is durable in Kafka; ``rejected`` lists the others by index and field.

    400 unreadable JSON, 413 body or batch too large, 422 no valid event, 503 (with Retry-After) Kafka unreachable.
    """
    settings: CollectorSettings = request.app.state.settings
    ingest: IngestService = request.state.ingest
    body = await read_body(request, settings.max_body_bytes)
    return IngestResponse.of(await ingest.ingest(body))
