"""One error hierarchy with status codes and one JSON shape for every 4xx/5xx the services answer.

Body: ``{"error": {"code", "message", "fields": [{"field", "reason"}]}}``; ``fields`` names what was wrong.
An error may also carry response headers, e.g. ``Retry-After`` on a 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import ErrorDetails


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


class SplitStreamError(Exception):
    status_code = 500
    code = "internal_error"
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self, message: str, fields: list[FieldError] | None = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        self.headers: dict[str, str] = {**self.default_headers, **(headers or {})}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "fields": [{"field": f.field, "reason": f.reason} for f in self.fields],
            }
        }


class BadRequest(SplitStreamError):
    """The request cannot even be read (e.g. its body is not JSON); a readable but wrong one is ``InvalidRequest``."""

    status_code = 400
    code = "bad_request"


class MalformedJson(BadRequest):
    """The body is not JSON at all (400); JSON of the wrong shape is an ``InvalidRequest`` (422)."""

    code = "malformed_json"


class InvalidRequest(SplitStreamError):
    status_code = 422
    code = "invalid_request"


class Unauthorized(SplitStreamError):
    status_code = 401
    code = "unauthorized"


class Forbidden(SplitStreamError):
    status_code = 403
    code = "forbidden"


class NotFound(SplitStreamError):
    status_code = 404
    code = "not_found"


class Conflict(SplitStreamError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(SplitStreamError):
    status_code = 413
    code = "payload_too_large"


RETRY_AFTER_SECONDS = 5
"""What a 503 tells clients to wait before trying again: about one reconnect attempt of a Kafka or Redis client."""


class DependencyUnavailable(SplitStreamError):
    status_code = 503
    code = "dependency_unavailable"
    default_headers: ClassVar[Mapping[str, str]] = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def field_errors(errors: list[ErrorDetails] | list[Any]) -> list[FieldError]:
    """Turn pydantic error details into dotted field paths, e.g. ``variants.1.weight``."""
    return [
        FieldError(field=".".join(str(part) for part in error["loc"]) or "body", reason=error["msg"])
        for error in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def on_splitstream_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SplitStreamError)
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # FastAPI prefixes locations with "body"/"query"/"path": keep it, it tells the caller where to look.
        error = InvalidRequest("request validation failed", field_errors(list(exc.errors())))
        return JSONResponse(error.body(), status_code=error.status_code)

    app.add_exception_handler(SplitStreamError, on_splitstream_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
