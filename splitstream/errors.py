"""One error hierarchy with status codes and one JSON shape for every 4xx/5xx the services answer.

Body: ``{"error": {"code", "message", "fields": [{"field", "reason"}]}}``; ``fields`` names what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pydantic_core import ErrorDetails


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


class SplitStreamError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "fields": [{"field": f.field, "reason": f.reason} for f in self.fields],
            }
        }


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


class DependencyUnavailable(SplitStreamError):
    status_code = 503
    code = "dependency_unavailable"


def field_errors(errors: list[ErrorDetails] | list[Any], *, skip_first: bool = False) -> list[FieldError]:
    """Turn pydantic error details into dotted field paths, e.g. ``variants.1.weight``."""
    result = []
    for error in errors:
        location = list(error["loc"])
        if skip_first and location:
            location = location[1:]
        path = ".".join(str(part) for part in location) or "body"
        result.append(FieldError(field=path, reason=error["msg"]))
    return result


def from_validation_error(error: ValidationError, message: str = "invalid input") -> InvalidRequest:
    return InvalidRequest(message, field_errors(error.errors()))


def install_error_handlers(app: FastAPI) -> None:
    async def on_splitstream_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SplitStreamError)
        return JSONResponse(exc.body(), status_code=exc.status_code)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # FastAPI prefixes locations with "body"/"query"/"path": keep it, it tells the caller where to look.
        error = InvalidRequest("request validation failed", field_errors(list(exc.errors())))
        return JSONResponse(error.body(), status_code=error.status_code)

    app.add_exception_handler(SplitStreamError, on_splitstream_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
