"""The request metrics every service gets from build_app: counted and timed by route template, never raw path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY

from splitstream.service_app import UNMATCHED_ROUTE, build_app, service_name
from splitstream.settings import CommonSettings
from tests.conftest import TEST_KEYS


@asynccontextmanager
async def _no_clients(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    yield {}


def _app(title: str) -> FastAPI:
    router = APIRouter()

    @router.get("/v1/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        return {"name": name}

    @router.post("/v1/crash")
    async def crash() -> None:
        raise RuntimeError("unhandled")

    return build_app(
        title=title, settings=CommonSettings(**TEST_KEYS),  # type: ignore[arg-type]
        lifespan=_no_clients, router=router, checks_of=lambda request: {},
    )


def _count(service: str, method: str, route: str, status: int) -> float:
    labels = {"service": service, "method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("splitstream_http_requests_total", labels) or 0.0


def _timed(service: str, route: str) -> float:
    return REGISTRY.get_sample_value(
        "splitstream_http_request_duration_seconds_count", {"service": service, "route": route}
    ) or 0.0


def test_the_service_label_comes_from_the_title() -> None:
    assert service_name("SplitStream analyzer") == "analyzer"
    assert service_name("SplitStream Event Collector") == "event_collector"


async def test_answers_are_counted_by_route_template_and_status() -> None:
    service = "metrics_probe"
    app = _app(f"SplitStream {service}")
    template = "/v1/things/{name}"
    before_ok, before_timed = _count(service, "GET", template, 200), _timed(service, template)
    before_missing = _count(service, "GET", UNMATCHED_ROUTE, 404)
    before_crash = _count(service, "POST", "/v1/crash", 500)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/v1/things/a")).status_code == 200
        assert (await http.get("/v1/things/b")).status_code == 200
        assert (await http.get("/no/such/path")).status_code == 404
        assert (await http.post("/v1/crash")).status_code == 500
        exposition = (await http.get("/metrics")).text

    assert _count(service, "GET", template, 200) - before_ok == 2
    assert _timed(service, template) - before_timed == 2
    assert _count(service, "GET", UNMATCHED_ROUTE, 404) - before_missing == 1
    assert _count(service, "POST", "/v1/crash", 500) - before_crash == 1
    assert "/v1/things/a" not in exposition, "raw paths must not become label values"
