"""The frame every service's ``create_app`` fills in: keys, the one error handler, routes, health and metrics.

Request metrics of every service (default registry, served by ``/metrics``):
- ``splitstream_http_requests_total{service,method,route,status}``   answers, error handlers' included
- ``splitstream_http_request_duration_seconds{service,route}``       histogram of the time to answer
``route`` is the matched route's template (``/v1/experiments/{key}``), or ``unmatched``, never the raw path: the
number of series stays bounded whatever paths clients send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from splitstream.auth import ApiKeys
from splitstream.errors import install_error_handlers
from splitstream.health import Check, health_router
from splitstream.settings import CommonSettings

HTTP_REQUESTS: Final = Counter(
    "splitstream_http_requests", "HTTP answers by service, method, route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY: Final = Histogram(
    "splitstream_http_request_duration_seconds", "Time to answer an HTTP request, by service and route template.",
    ["service", "route"],
)
UNMATCHED_ROUTE: Final = "unmatched"


async def call_recording(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, record: Callable[[int, float], None]
) -> None:
    """Run ``app`` and then ``record(status, seconds)``, also when an error handler answered or the app raised."""
    status = 500  # what the server answers if the app raises without answering

    async def send_recording_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    started = time.perf_counter()
    try:
        await app(scope, receive, send_recording_status)
    finally:
        record(status, time.perf_counter() - started)


class RequestMetrics:
    """ASGI middleware counting and timing every HTTP answer of one service."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self._app = app
        self._service = service
        # Labelled children are looked up once per (route, method, status): ``labels()`` costs microseconds.
        self._latency: dict[str, Any] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        def record(status: int, seconds: float) -> None:
            # The router writes the matched route into this same scope while dispatching.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            latency = self._latency.get(route)
            if latency is None:
                latency = self._latency[route] = HTTP_LATENCY.labels(self._service, route)
            latency.observe(seconds)
            requests = self._requests.get((route, scope["method"], status))
            if requests is None:
                requests = HTTP_REQUESTS.labels(self._service, scope["method"], route, str(status))
                self._requests[route, scope["method"], status] = requests
            requests.inc()

        await call_recording(self._app, scope, receive, send, record)


def service_name(title: str) -> str:
    """``"SplitStream analyzer"`` → ``"analyzer"``: the ``service`` label of the request metrics."""
    return title.removeprefix("SplitStream").strip().lower().replace(" ", "_") or "splitstream"


def build_app(
    *,
    title: str,
    settings: CommonSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    router: APIRouter,
    checks_of: Callable[[Request], Mapping[str, Check]],
    middleware: Sequence[type[Any]] = (),
) -> FastAPI:
    """``settings`` are kept on ``app.state.settings`` for the lifespan; API keys must all be configured.
    ``middleware`` classes (taking only the app) run inside the request metrics, outermost first."""
    # FastAPI's OpenTelemetry hook looks up its providers on every request, a third of a cheap request's cost;
    # the services export their own Prometheus metrics instead.
    app = FastAPI(
        title=title, version="0.1.0", lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.api_keys = ApiKeys.from_settings(settings)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health_router(checks_of))
    for inner in reversed(middleware):
        app.add_middleware(inner)
    app.add_middleware(RequestMetrics, service=service_name(title))
    return app
