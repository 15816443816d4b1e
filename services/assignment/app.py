"""The assignment service's HTTP app: ``uvicorn --factory services.assignment.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import TypedDict

from fastapi import FastAPI, Request
from redis.asyncio import Redis

from services.assignment.adapters.registry import GuardedRegistry
from services.assignment.config import AssignmentSettings
from services.assignment.routes import router
from services.assignment.service import AssignmentService
from splitstream.eventlog import EventLog, connected
from splitstream.health import Check, check_redis
from splitstream.registry import ExperimentRegistry
from splitstream.service_app import build_app


class AssignmentState(TypedDict):
    redis: Redis
    registry: ExperimentRegistry
    event_log: EventLog
    assignments: AssignmentService


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[AssignmentState]:
    settings: AssignmentSettings = app.state.settings
    redis = Redis.from_url(settings.redis_url)
    try:
        registry = ExperimentRegistry(redis, settings.redis_keys)
        event_log = EventLog(settings.kafka_bootstrap_servers, settings.events_topic)
        async with connected(event_log, settings.kafka_retry_seconds):
            assignments = AssignmentService(
                GuardedRegistry(registry), event_log, cache_seconds=settings.experiment_cache_seconds
            )
            yield {"redis": redis, "registry": registry, "event_log": event_log, "assignments": assignments}
    finally:
        await redis.aclose()


def _dependency_checks(request: Request) -> Mapping[str, Check]:
    event_log: EventLog = request.state.event_log
    return {"redis": partial(check_redis, request.state.redis), "kafka": event_log.check}


def create_app(settings: AssignmentSettings | None = None) -> FastAPI:
    return build_app(
        title="SplitStream assignment", settings=settings or AssignmentSettings(), lifespan=lifespan, router=router,
        checks_of=_dependency_checks,
    )
