"""The assignment service's HTTP app: ``uvicorn --factory services.assignment.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import TypedDict

from fastapi import FastAPI, Request
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware

from services.assignment.adapters.definition_log import DefinitionLog
from services.assignment.adapters.definitions import DefinitionStore
from services.assignment.adapters.sticky import StickyStore
from services.assignment.admin import Administration
from services.assignment.catalog_feed import CatalogFeed
from services.assignment.config import AssignmentSettings
from services.assignment.hot_path import AssignFrontDoor, AssignHotPath, RememberedAnswers, describe
from services.assignment.routes import router
from services.assignment.service import AssignmentService
from splitstream.errors import DependencyUnavailable
from splitstream.eventlog import EventLog, connected
from splitstream.health import Check, check_redis
from splitstream.redis_client import open_redis
from splitstream.service_app import build_app


class AssignmentState(TypedDict):
    redis: Redis
    event_log: EventLog
    catalog: CatalogFeed
    admin: Administration
    assignments: AssignmentService
    answers: RememberedAnswers


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[AssignmentState]:
    settings: AssignmentSettings = app.state.settings
    keys = settings.redis_keys
    redis = open_redis(settings.redis_url)
    try:
        store = DefinitionStore(redis, keys)
        feed = CatalogFeed(store, redis, keys.definitions_changed, resync_seconds=settings.catalog_resync_seconds)
        event_log = EventLog(settings.kafka_bootstrap_servers, settings.events_topic)
        async with connected(event_log, settings.kafka_retry_seconds), feed.following():
            definitions = DefinitionLog(event_log, settings.kafka_bootstrap_servers, settings.definitions_topic)
            sticky = StickyStore(redis, keys, cache_size=settings.sticky_cache_size)
            yield {
                "redis": redis, "event_log": event_log, "catalog": feed,
                "admin": Administration(store, definitions, feed),
                "assignments": AssignmentService(feed, sticky, event_log),
                "answers": RememberedAnswers(settings.answer_cache_size),
            }
    finally:
        await redis.aclose()


async def _catalog_loaded(feed: CatalogFeed) -> None:
    if not feed.loaded:
        raise DependencyUnavailable("catalog: definitions not loaded from redis yet")


def _dependency_checks(request: Request) -> Mapping[str, Check]:
    event_log: EventLog = request.state.event_log
    return {
        "redis": partial(check_redis, request.state.redis), "kafka": event_log.check,
        "catalog": partial(_catalog_loaded, request.state.catalog),
    }


def create_app(settings: AssignmentSettings | None = None) -> FastAPI:
    settings = settings or AssignmentSettings()
    app = build_app(
        title="SplitStream assignment", settings=settings, lifespan=lifespan, router=router,
        checks_of=_dependency_checks, middleware=[AssignHotPath], front=[AssignFrontDoor],
    )
    describe(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "if-none-match"], expose_headers=["etag"],
        )
    return app
