"""The analyzer's HTTP app: ``uvicorn --factory services.analyzer.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import TypedDict

from fastapi import FastAPI, Request
from redis.asyncio import Redis

from services.analyzer.adapters.variant_stats import VariantStatsReader
from services.analyzer.config import AnalyzerSettings
from services.analyzer.routes import router
from services.analyzer.service import ResultsService
from splitstream.auth import ApiKeys
from splitstream.errors import install_error_handlers
from splitstream.health import Check, check_redis, health_router
from splitstream.registry import ExperimentRegistry


class AnalyzerState(TypedDict):
    redis: Redis
    registry: ExperimentRegistry
    results: ResultsService


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[AnalyzerState]:
    settings: AnalyzerSettings = app.state.settings
    redis = Redis.from_url(settings.redis_url)
    registry = ExperimentRegistry(redis, settings.redis_keys)
    results = ResultsService(
        registry,
        VariantStatsReader(redis, settings.redis_keys),
        default_alpha=settings.alpha,
        srm_threshold=settings.srm_threshold,
    )
    try:
        yield {"redis": redis, "registry": registry, "results": results}
    finally:
        await redis.aclose()


def _dependency_checks(request: Request) -> Mapping[str, Check]:
    # The analyzer reads only Redis; Kafka being down does not make its answers wrong.
    return {"redis": partial(check_redis, request.state.redis)}


def create_app(settings: AnalyzerSettings | None = None) -> FastAPI:
    settings = settings or AnalyzerSettings()
    app = FastAPI(title="SplitStream analyzer", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.api_keys = ApiKeys.from_settings(settings)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health_router(_dependency_checks))
    return app
