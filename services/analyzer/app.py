"""The analyzer's HTTP app: ``uvicorn --factory services.analyzer.app:create_app``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import TypedDict

import httpx
from fastapi import APIRouter, FastAPI, Request
from redis.asyncio import Redis

from services.analyzer.adapters.looks import LookLog
from services.analyzer.adapters.snapshots import SnapshotLog
from services.analyzer.adapters.variant_stats import VariantStatsReader
from services.analyzer.alerts import AlertWatcher
from services.analyzer.config import AnalyzerSettings
from services.analyzer.gauges import GaugeRefresher
from services.analyzer.report.routes import router as report_router
from services.analyzer.routes import router
from services.analyzer.service import ResultsService
from services.analyzer.timeseries import TimeseriesService
from splitstream.health import Check, check_redis
from splitstream.redis_client import open_redis
from splitstream.registry import ExperimentRegistry
from splitstream.service_app import build_app


class AnalyzerState(TypedDict):
    redis: Redis
    registry: ExperimentRegistry
    results: ResultsService
    gauges: GaugeRefresher
    timeseries: TimeseriesService


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[AnalyzerState]:
    settings: AnalyzerSettings = app.state.settings
    redis = open_redis(settings.redis_url)
    registry = ExperimentRegistry(redis, settings.redis_keys)
    results = ResultsService(
        registry,
        VariantStatsReader(redis, settings.redis_keys),
        LookLog(redis, settings.redis_keys),
        srm_threshold=settings.srm_threshold,
    )
    gauges = GaugeRefresher(registry, results)
    timeseries = TimeseriesService(registry, SnapshotLog(redis, settings.redis_keys))
    background = []
    if settings.gauge_refresh_seconds > 0:
        background.append(asyncio.create_task(gauges.run(settings.gauge_refresh_seconds), name="analyzer-gauges"))
    if settings.snapshot_interval_seconds > 0:
        background.append(
            asyncio.create_task(timeseries.run(settings.snapshot_interval_seconds), name="analyzer-snapshots")
        )
    http = httpx.AsyncClient(timeout=10)
    if settings.alert_webhook_url:
        assert settings.admin_key is not None  # ApiKeys.from_settings refused the app without it
        watcher = AlertWatcher(
            registry, results, redis, settings.redis_keys, http, webhook_url=settings.alert_webhook_url,
            stop_on_harm=settings.stop_on_guardrail_harm, assignment_url=settings.assignment_url,
            admin_key=settings.admin_key.get_secret_value(),
        )
        background.append(asyncio.create_task(watcher.run(settings.alert_interval_seconds), name="analyzer-alerts"))
    try:
        yield {"redis": redis, "registry": registry, "results": results, "gauges": gauges, "timeseries": timeseries}
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gauges.forget()
        await http.aclose()
        await redis.aclose()


def _dependency_checks(request: Request) -> Mapping[str, Check]:
    # The analyzer reads only Redis; Kafka being down does not make its answers wrong.
    return {"redis": partial(check_redis, request.state.redis)}


def create_app(settings: AnalyzerSettings | None = None) -> FastAPI:
    routes = APIRouter()
    routes.include_router(router)
    routes.include_router(report_router)  # the HTML report: /experiments, /experiments/{key}, /static/*
    return build_app(
        title="SplitStream analyzer", settings=settings or AnalyzerSettings(), lifespan=lifespan, router=routes,
        checks_of=_dependency_checks,
    )
