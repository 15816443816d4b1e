"""``/v1/assign``, answered by a plain ASGI handler in front of the FastAPI app.

A frontend calls it on every page view, so it skips the framework's per-request machinery (routing, dependency
solving, request and response models), which cost several times the assignment itself, and, in front of the whole
stack (:class:`AssignFrontDoor`), the framework's error, telemetry and body-limit layers too. It keeps everything a
route has: the same API keys and scopes, errors in the one error shape (naming the field at fault), request
metrics (same labels), CORS (requests with an ``Origin`` header take the stack's way), and the OpenAPI description
(see :func:`describe`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.assignment.metrics import COMPUTED_ANSWERS, REMEMBERED_ANSWERS
from services.assignment.recent import RecentValues
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
from splitstream.evaluation import Catalog
from splitstream.service_app import RouteMetrics

ASSIGN_PATH: Final = "/v1/assign"
_METHODS: Final = frozenset({"GET", "POST"})
_QUERY: Final = TypeAdapter(AssignQuery)
_JSON: Final = (b"content-type", b"application/json")
_REMEMBERED_AUTHORIZATIONS: Final = 16
"""Distinct ``Authorization`` values remembered as granting ingest (spellings of the few valid keys)."""
MAX_REMEMBERED_REQUEST_BYTES: Final = 2048
"""Longer requests are answered afresh every time, so the remembered answers' memory stays bounded."""


class RememberedAnswers:
    """Answers that may be given again as they are (:attr:`AssignOutcome.repeatable`), by request: the method with
    the body of a ``POST`` or the query of a ``GET``. Each holds only while the catalog it was made from is the
    current one (any change of any definition makes a new catalog). A returning user asking with the same
    attributes then costs a lookup instead of validation, evaluation and serialization; the key was checked before,
    as for any request."""

    def __init__(self, size: int) -> None:
        self._answers: RecentValues[tuple[str, bytes], tuple[Catalog, bytes]] = RecentValues(size)

    def get(self, method: str, request: bytes, catalog: Catalog) -> bytes | None:
        found = self._answers.get((method, request))
        if found is None or found[0] is not catalog:
            return None
        REMEMBERED_ANSWERS.inc()
        return found[1]

    def remember(self, method: str, request: bytes, catalog: Catalog, answer: bytes) -> None:
        if len(request) <= MAX_REMEMBERED_REQUEST_BYTES:
            self._answers[method, request] = (catalog, answer)


class _Route:
    """What ``RequestMetrics`` reads from ``scope["route"]`` to label the request."""

    path = ASSIGN_PATH


class AssignHandler:
    """Answers one ``GET`` or ``POST /v1/assign`` from its scope, errors included; returns the status sent."""

    def __init__(self) -> None:
        self._ingest_authorizations: set[bytes] = set()
        """``Authorization`` values already checked to grant ingest: the keys never change while the app runs."""

    async def respond(
        self, scope: Scope, receive: Receive, send: Send, request_headers: dict[bytes, bytes]
    ) -> int:
        try:
            status, body = 200, await self._answer(scope, receive, request_headers)
            headers = [_JSON, (b"content-length", b"%d" % len(body))]
        except SplitStreamError as error:
            status, body = error.status_code, orjson.dumps(error.body())
            headers = [_JSON, (b"content-length", b"%d" % len(body))]
            headers.extend((name.lower().encode(), value.encode()) for name, value in (error.headers or {}).items())
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    async def _answer(self, scope: Scope, receive: Receive, request_headers: dict[bytes, bytes]) -> bytes:
        raw_query = scope["query_string"]
        query = parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True) if raw_query else []
        authorization = request_headers.get(b"authorization")
        if authorization is None or authorization not in self._ingest_authorizations:
            self._authorize(scope, authorization, query)
        state = scope["state"]
        service: AssignmentService = state["assignments"]
        remembered: RememberedAnswers = state["answers"]
        catalog = service.catalog  # before answering: an answer is never filed under a newer catalog than its own
        method = scope["method"]
        if method == "POST":
            declared = request_headers.get(b"content-length")
            check_declared_length(declared.decode("latin-1") if declared else None, MAX_ASSIGN_BODY_BYTES)
            request_bytes = await _body(receive)
        else:
            request_bytes = raw_query
        answer = remembered.get(method, request_bytes, catalog)
        if answer is not None:
            return answer
        if method == "POST":
            request = parse_json(ASSIGN_REQUEST, request_bytes)
            outcome = await service.assign(
                request.user_id, request.attributes, request.experiments, log_exposure=request.log_exposure
            )
            answer = orjson.dumps({
                "user_id": request.user_id, "assignments": [wire_assignment(a) for a in outcome.assignments],
            })
        else:
            single = _parse_query(query)
            outcome = await service.assign(
                single.user_id, single.attribute_map(), [single.experiment], log_exposure=single.log_exposure,
                field="experiment",
            )
            answer = orjson.dumps({**wire_assignment(outcome.assignments[0]), "user_id": single.user_id})
        COMPUTED_ANSWERS.inc()
        if outcome.repeatable:
            remembered.remember(method, request_bytes, catalog, answer)
        return answer

    def _authorize(self, scope: Scope, authorization: bytes | None, query: list[tuple[str, str]]) -> None:
        api_keys: ApiKeys = scope["app"].state.api_keys
        query_key = next((value for name, value in query if name == QUERY_KEY), None)
        check_scope(
            granted_scopes(api_keys, authorization.decode("latin-1") if authorization else None, query_key),
            KeyScope.INGEST,
        )
        # Only a header that passed is remembered (a query key is not: the header, when present, decides alone).
        if authorization and len(self._ingest_authorizations) < _REMEMBERED_AUTHORIZATIONS:
            self._ingest_authorizations.add(authorization)


class AssignFrontDoor:
    """``/v1/assign`` in front of the whole framework stack (``build_app``'s ``front``), its metrics recorded here
    under the same labels ``RequestMetrics`` gives it. A request with an ``Origin`` header goes through the stack
    instead, where the CORS middleware (when configured) answers for it and :class:`AssignHotPath` serves it;
    without one, CORS would only have passed it through."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self._app = app
        self._handler = AssignHandler()
        self._metrics = RouteMetrics(service, ASSIGN_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ASSIGN_PATH or scope["method"] not in _METHODS:
            await self._app(scope, receive, send)
            return
        request_headers = dict(scope["headers"])
        if b"origin" in request_headers:
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the handler raises
        try:
            status = await self._handler.respond(scope, receive, send, request_headers)
        finally:
            self._metrics.record(scope["method"], status, time.perf_counter() - started)


class AssignHotPath:
    """``/v1/assign`` as middleware inside the request metrics and CORS, for the requests the front door passes on
    (those with an ``Origin`` header)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._handler = AssignHandler()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ASSIGN_PATH or scope["method"] not in _METHODS:
            await self._app(scope, receive, send)
            return
        scope["route"] = _Route
        await self._handler.respond(scope, receive, send, dict(scope["headers"]))


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

