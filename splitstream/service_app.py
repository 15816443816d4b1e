"""The frame every service's ``create_app`` fills in: keys, the one error handler, routes, health and metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from splitstream.auth import ApiKeys
from splitstream.errors import install_error_handlers
from splitstream.health import Check, health_router
from splitstream.settings import CommonSettings


def build_app(
    *,
    title: str,
    settings: CommonSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    router: APIRouter,
    checks_of: Callable[[Request], Mapping[str, Check]],
) -> FastAPI:
    """``settings`` are kept on ``app.state.settings`` for the lifespan; API keys must all be configured."""
    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.api_keys = ApiKeys.from_settings(settings)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(health_router(checks_of))
    return app
