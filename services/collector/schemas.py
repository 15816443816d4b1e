"""Wire models of the ingest API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from services.collector.service import IngestResult


class RejectedEventOut(BaseModel):
    index: int
    field: str
    reason: str


class IngestResponse(BaseModel):
    accepted: int
    rejected: list[RejectedEventOut]

    @classmethod
    def of(cls, result: IngestResult) -> IngestResponse:
        return cls(
            accepted=result.accepted,
            rejected=[RejectedEventOut(index=r.index, field=r.field, reason=r.reason) for r in result.rejected],
        )


# The body is parsed by hand (to control error shapes), so its schema is declared for the OpenAPI document only.
INGEST_REQUEST_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "additionalProperties": False,
                    "properties": {
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "description": 'Exposures {"type": "exposure", "event_id", "user_id", "experiment", '
                            '"variant", "timestamp"} and events {"type": "event", "event_id", "user_id", "name", '
                            '"value"?, "timestamp"}; each is validated on its own. "received_at" is set by the '
                            "collector (the server's receive time); a value sent is overwritten.",
                            "items": {"type": "object"},
                        }
                    },
                }
            }
        },
    }
}
