"""The collector's HTTP app: ``uvicorn --factory services.collector.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import TypedDict

from fastapi import FastAPI, Request
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware

from services.collector.adapters.experiments import VariantCatalog
from services.collector.config import CollectorSettings
from services.collector.metrics import IngestRequestMetrics
from services.collector.routes import INGEST_PATH, router
from services.collector.service import IngestService
from splitstream.eventlog import EventLog, connected
from splitstream.health import Check, check_redis
from splitstream.redis_client import open_redis
from splitstream.registry import ExperimentRegistry
from splitstream.service_app import build_app


class CollectorState(TypedDict):
    redis: Redis
    event_log: EventLog
    ingest: IngestService


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[CollectorState]:
    settings: CollectorSettings = app.state.settings
    redis = open_redis(settings.redis_url)
    event_log = EventLog(settings.kafka_bootstrap_servers, settings.events_topic)
    catalog = VariantCatalog(ExperimentRegistry(redis, settings.redis_keys))
    ingest = IngestService(
        event_log,
        catalog,
        max_batch_events=settings.max_batch_events,
        max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
        max_past_skew=timedelta(seconds=settings.max_past_skew_seconds),
    )
    try:
        async with connected(event_log):
            yield {"redis": redis, "event_log": event_log, "ingest": ingest}
    finally:
        await redis.aclose()


def _dependency_checks(request: Request) -> Mapping[str, Check]:
    event_log: EventLog = request.state.event_log
    return {"kafka": event_log.check, "redis": partial(check_redis, request.state.redis)}


def create_app(settings: CollectorSettings | None = None) -> FastAPI:
    settings = settings or CollectorSettings()
    app = build_app(
        title="SplitStream collector", settings=settings, lifespan=lifespan, router=router,
        checks_of=_dependency_checks,
    )
    app.add_middleware(IngestRequestMetrics, path=INGEST_PATH)
    if settings.cors_origins:
        # Browsers send the key in Authorization and the batch as JSON, so both headers need a preflight.
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app
