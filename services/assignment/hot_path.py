"""``/v1/assign``, answered by a plain ASGI handler in front of the FastAPI app.

A frontend calls it on every page view, so it skips the framework's per-request machinery (routing, dependency
solving, request and response models), which cost several times the assignment itself. It keeps everything a
route has: the same API keys and scopes, errors in the one error shape (naming the field at fault), request
metrics (it sits inside ``RequestMetrics`` and CORS), and the OpenAPI description (see :func:`describe`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.assignment.schemas import (
    ASSIGN_REQUEST,
    MAX_ASSIGN_BODY_BYTES,
    AssignQuery,
    AssignRequest,
    AssignResponse,
    SingleAssignment,
    wire_assignment,
)
from services.assignment.service import AssignmentService
from splitstream.auth import QUERY_KEY, ApiKeys, check_scope, granted_scopes
from splitstream.auth import Scope as KeyScope
from splitstream.body import check_declared_length, collect_bounded, parse_json
from splitstream.errors import InvalidRequest, SplitStreamError, field_errors

ASSIGN_PATH: Final = "/v1/assign"
_QUERY: Final = TypeAdapter(AssignQuery)
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


class _Route:
    """What ``RequestMetrics`` reads from ``scope["route"]`` to label the request."""

    path = ASSIGN_PATH


class AssignHotPath:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ASSIGN_PATH or scope["method"] not in {"GET", "POST"}:
            await self._app(scope, receive, send)
            return
        scope["route"] = _Route
        headers: list[tuple[bytes, bytes]] = list(_JSON_HEADERS)
        try:
            status, body = 200, await self._answer(scope, receive)
        except SplitStreamError as error:
            status, body = error.status_code, orjson.dumps(error.body())
            headers.extend((name.lower().encode(), value.encode()) for name, value in (error.headers or {}).items())
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> bytes:
        request_headers = dict(scope["headers"])
        raw_query = scope["query_string"]
        query = parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True) if raw_query else []
        authorization = request_headers.get(b"authorization")
        query_key = next((value for name, value in query if name == QUERY_KEY), None)
        api_keys: ApiKeys = scope["app"].state.api_keys
        check_scope(
            granted_scopes(api_keys, authorization.decode("latin-1") if authorization else None, query_key),
            KeyScope.INGEST,
        )
        service: AssignmentService = scope["state"]["assignments"]
        if scope["method"] == "POST":
            declared = request_headers.get(b"content-length")
            check_declared_length(declared.decode("latin-1") if declared else None, MAX_ASSIGN_BODY_BYTES)
            request = parse_json(ASSIGN_REQUEST, await _body(receive))
            assignments = await service.assign(
                request.user_id, request.attributes, request.experiments, log_exposure=request.log_exposure
            )
            return orjson.dumps({"user_id": request.user_id, "assignments": [wire_assignment(a) for a in assignments]})
        single = _parse_query(query)
        [assignment] = await service.assign(
            single.user_id, single.attribute_map(), [single.experiment], log_exposure=single.log_exposure,
            field="experiment",
        )
        return orjson.dumps({**wire_assignment(assignment), "user_id": single.user_id})


async def _body(receive: Receive) -> bytes:
    first: Message = await receive()
    body = first.get("body", b"")
    if first["type"] == "http.request" and not first.get("more_body", False) and len(body) <= MAX_ASSIGN_BODY_BYTES:
        return bytes(body)  # the usual case: the whole body in one message
    return await collect_bounded(_chunks(receive, first), MAX_ASSIGN_BODY_BYTES)


async def _chunks(receive: Receive, first: Message) -> AsyncIterator[bytes]:
    message = first
    while True:
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
        message = await receive()


def _parse_query(pairs: list[tuple[str, str]]) -> AssignQuery:
    fields: dict[str, Any] = {"attr": []}
    for name, value in pairs:
        if name == "attr":
            fields["attr"].append(value)
        elif name != QUERY_KEY:
            fields[name] = value
    try:
        return _QUERY.validate_python(fields)
    except ValidationError as error:
        located = [{**detail, "loc": ("query", *detail["loc"])} for detail in error.errors(include_url=False)]
        raise InvalidRequest("request validation failed", field_errors(located)) from error


def describe(app: FastAPI) -> None:
    """Add ``/v1/assign`` to the app's OpenAPI document, which only lists framework routes."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})

        def reference(model: type[BaseModel]) -> dict[str, str]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        security: list[dict[str, list[str]]] = [{"ingest key": []}]
        document["paths"][ASSIGN_PATH] = {
            "post": {
                "tags": ["assignment"], "summary": "Assign a user to every live experiment (or those named)",
                "description": "With log_exposure (default) a 200 means the exposures are durable in Kafka.",
                "requestBody": {
                    "required": True, "content": {"application/json": {"schema": reference(AssignRequest)}},
                },
                "responses": {"200": {"content": {"application/json": {"schema": reference(AssignResponse)}}}},
                "security": security,
            },
            "get": {
                "tags": ["assignment"], "summary": "Assign a user to one experiment (attributes as attr=name:value)",
                "parameters": [
                    {"name": name, "in": "query", "required": name in {"experiment", "user_id"}}
                    for name in ("experiment", "user_id", "attr", "log_exposure")
                ],
                "responses": {"200": {"content": {"application/json": {"schema": reference(SingleAssignment)}}}},
                "security": security,
            },
        }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]

