"""The collector's Prometheus metrics, in the default registry.

Ingest (served by the collector's ``GET /metrics``):
- ``splitstream_ingest_requests_total{status}``       answers to ``POST /v1/events`` by HTTP status, refusals included
- ``splitstream_ingest_request_duration_seconds``     histogram of the time to answer ``POST /v1/events``
- ``splitstream_ingest_events_total{outcome}``        events ``accepted`` (durable in Kafka) or ``rejected`` (invalid)
- ``splitstream_kafka_publish_errors_total``          batches Kafka did not acknowledge (each answered 503)

Aggregation consumer (no HTTP port of its own: served by :func:`serve_metrics` on ``consumer_metrics_port``):
- ``splitstream_consumer_events_total{outcome}``      ``applied`` (first deliveries folded, orphans included),
                                                      ``duplicate`` (redeliveries skipped), ``orphan`` (exposures to
                                                      unknown experiments or variants), ``dead_letter`` (undecodable
                                                      records set aside on the dead-letter topic)
- ``splitstream_consumer_lag{partition}``             records on the partition not yet committed by the group: the
                                                      broker's end offset minus the committed offset, per batch
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from starlette.types import ASGIApp, Receive, Scope, Send

from splitstream.service_app import call_recording

INGEST_REQUESTS: Final = Counter(
    "splitstream_ingest_requests", "Answers to POST /v1/events by HTTP status.", ["status"]
)
INGEST_LATENCY: Final = Histogram(
    "splitstream_ingest_request_duration_seconds", "Time to answer POST /v1/events, Kafka acknowledgement included."
)
INGEST_EVENTS: Final = Counter(
    "splitstream_ingest_events", "Events received by POST /v1/events: accepted (durable) or rejected.", ["outcome"]
)
KAFKA_PUBLISH_ERRORS: Final = Counter(
    "splitstream_kafka_publish_errors", "Ingest batches Kafka did not acknowledge (answered 503)."
)
CONSUMER_EVENTS: Final = Counter(
    "splitstream_consumer_events", "Records read by the aggregation consumer, by outcome.", ["outcome"]
)
CONSUMER_LAG: Final = Gauge(
    "splitstream_consumer_lag", "End offset minus the group's committed offset, per partition.", ["partition"]
)


class IngestRequestMetrics:
    """ASGI middleware counting and timing the answers to ``POST path``, including those of the error handlers."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self._app = app
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self._path:
            await self._app(scope, receive, send)
            return

        def record(status: int, seconds: float) -> None:
            INGEST_LATENCY.observe(seconds)
            INGEST_REQUESTS.labels(status=str(status)).inc()

        await call_recording(self._app, scope, receive, send, record)


def serve_metrics(host: str, port: int) -> Callable[[], None]:
    """Serve the default registry on ``host:port`` from a background thread; returns the function that stops it."""
    server, thread = start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
