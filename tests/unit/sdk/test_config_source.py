from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import httpx
import pytest

from splitstream.evaluation import CatalogDocument
from splitstream.experiment import Experiment, ExperimentStatus, Variant
from splitstream.sdk.config_source import ConfigSource

BASE = "http://assignment.test"
CREATED = datetime(2026, 11, 1, tzinfo=UTC)


def document(*weights: float) -> CatalogDocument:
    variants = [Variant(key=f"v{index}", weight=weight) for index, weight in enumerate(weights)]
    experiment = Experiment(
        key="title-test", variants=variants, status=ExperimentStatus.RUNNING, salt="title-test", created_at=CREATED
    )
    return CatalogDocument(experiments=[experiment])


class FakeConfigServer:
    """``GET /v1/config`` as the assignment service serves it: the document, its ETag, 304 on a matching one."""

    def __init__(self, served: CatalogDocument) -> None:
        self.served = served
        self.failure: httpx.Response | Exception | None = None
        self.requests: list[httpx.Request] = []
        self.answered = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.answered.set()
        if isinstance(self.failure, Exception):
            raise self.failure
        if self.failure is not None:
            return self.failure
        assert request.method == "GET"
        assert request.url.path == "/v1/config"
        etag = self.served.etag()
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        return httpx.Response(200, content=self.served.model_dump_json(), headers={"ETag": etag})


def source_for(server: FakeConfigServer, refresh_seconds: float = 10.0) -> ConfigSource:
    """A source without its thread: tests call refresh() or start() themselves."""
    http = httpx.Client(transport=httpx.MockTransport(server))
    return ConfigSource(http, BASE + "/", refresh_seconds=refresh_seconds, start_thread=False)


def test_the_first_refresh_loads_the_served_document() -> None:
    server = FakeConfigServer(document(0.5, 0.5))
    source = source_for(server)
    assert source.catalog is None

    assert source.refresh() is True

    assert source.catalog is not None
    assert source.catalog.document == server.served
    assert source.etag == server.served.etag()
    assert str(server.requests[0].url) == BASE + "/v1/config"
    assert "if-none-match" not in server.requests[0].headers


def test_an_unchanged_document_answers_304_and_keeps_the_catalog() -> None:
    server = FakeConfigServer(document(0.5, 0.5))
    source = source_for(server)
    source.refresh()
    first = source.catalog

    assert source.refresh() is True

    assert server.requests[1].headers["if-none-match"] == server.served.etag()
    assert source.catalog is first


def test_a_changed_document_replaces_the_catalog() -> None:
    server = FakeConfigServer(document(0.5, 0.5))
    source = source_for(server)
    source.refresh()
    server.served = document(0.2, 0.8)

    assert source.refresh() is True

    assert source.catalog is not None
    experiment = source.catalog.get("title-test")
    assert experiment is not None
    assert experiment.weights == [0.2, 0.8]
    assert source.etag == server.served.etag()


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(503, json={"error": {"code": "unavailable"}}),
        httpx.Response(401, json={"error": {"code": "unauthorized"}}),
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json={"experiments": [{"key": "no salt or variants"}]}),
    ],
    ids=["connect", "timeout", "503", "401", "not-json", "invalid-document"],
)
def test_a_failed_refresh_keeps_serving_the_last_catalog(
    failure: httpx.Response | Exception, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeConfigServer(document(0.5, 0.5))
    source = source_for(server)
    source.refresh()
    last, last_etag = source.catalog, source.etag
    server.served = document(0.2, 0.8)
    server.failure = failure

    with caplog.at_level(logging.WARNING, logger="splitstream.sdk.config_source"):
        assert source.refresh() is False

    assert source.catalog is last
    assert source.etag == last_etag
    assert "keeping the last catalog" in caplog.text

    server.failure = None
    assert source.refresh() is True
    assert source.catalog is not last


def test_a_failure_before_any_catalog_leaves_none() -> None:
    server = FakeConfigServer(document(0.5, 0.5))
    server.failure = httpx.ConnectError("down")
    source = source_for(server)

    assert source.refresh() is False
    assert source.catalog is None


def test_the_background_thread_picks_up_a_change() -> None:
    server = FakeConfigServer(document(0.5, 0.5))
    source = source_for(server, refresh_seconds=0.01)
    source.refresh()
    server.served = document(0.2, 0.8)
    server.answered.clear()

    source.start()
    try:
        for _ in range(100):  # wakes at most every 0.02 s; bounded at 2 s in all
            if source.etag == server.served.etag():
                break
            server.answered.wait(0.02)
    finally:
        source.close()

    assert source.catalog is not None
    assert source.catalog.document == server.served


def test_close_stops_the_thread() -> None:
    server = FakeConfigServer(document(0.5, 0.5))
    source = source_for(server, refresh_seconds=0.01)
    source.start()
    server.answered.wait(2)
    source.close()
    count = len(server.requests)

    server.answered.clear()
    assert not server.answered.wait(0.1)
    assert len(server.requests) == count
