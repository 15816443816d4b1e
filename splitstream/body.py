"""Request bodies: read with a size limit (never holding more than the limit plus one chunk in memory) and parsed
into a model with errors that name the field."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request

from splitstream.errors import BadRequest, FieldError, InvalidRequest, MalformedJson, PayloadTooLarge, field_errors

_Parsed = TypeVar("_Parsed")


def _too_large(limit: int, found: str) -> PayloadTooLarge:
    return PayloadTooLarge("the request body is too large", [FieldError("body", f"{found}; at most {limit} bytes")])


def check_declared_length(declared: str | None, limit: int) -> None:
    """Refuse at once a body whose ``Content-Length`` is over ``limit``, before reading any of it."""
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError as error:
        raise BadRequest(
            "invalid Content-Length", [FieldError("content-length", "must be a whole number of bytes")]
        ) from error
    if length > limit:
        raise _too_large(limit, f"declares {length} bytes")


async def collect_bounded(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """The concatenated ``chunks``; stops reading and refuses as soon as they pass ``limit`` bytes.

    Needed even after :func:`check_declared_length`: a chunked body declares no length.
    """
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(limit, f"more than {limit} bytes sent")
    return bytes(body)


async def read_body(request: Request, limit: int) -> bytes:
    check_declared_length(request.headers.get("content-length"), limit)
    return await collect_bounded(request.stream(), limit)


def parse_json(adapter: TypeAdapter[_Parsed], body: bytes) -> _Parsed:
    """``body`` validated straight from JSON bytes: 400 if it is not JSON, 422 naming ``body.<field>`` otherwise."""
    try:
        return adapter.validate_json(body)
    except ValidationError as error:
        details = error.errors(include_url=False)
        if any(detail["type"] == "json_invalid" for detail in details):
            raise MalformedJson("the body is not valid JSON", [FieldError("body", details[0]["msg"])]) from error
        located = [{**detail, "loc": ("body", *detail["loc"])} for detail in details]
        raise InvalidRequest("request validation failed", field_errors(located)) from error
