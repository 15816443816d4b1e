"""``/healthz`` (alive), ``/readyz`` (every dependency answers) and ``/metrics`` (Prometheus), in every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from splitstream.errors import DependencyUnavailable

Check = Callable[[], Awaitable[None]]


async def check_redis(redis: Redis) -> None:
    try:
        await asyncio.wait_for(redis.ping(), timeout=3)
    except (RedisError, OSError, TimeoutError) as error:
        raise DependencyUnavailable(f"redis: {error!r}") from error


def health_router(checks_of: Callable[[Request], Mapping[str, Check]]) -> APIRouter:
    """``checks_of`` gives, per request, the named dependency checks (they live on the app's state)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        results: dict[str, str] = {}
        failing: list[str] = []
        for name, check in checks_of(request).items():
            try:
                await check()
                results[name] = "ok"
            except DependencyUnavailable as error:
                results[name] = error.message
                failing.append(name)
        if failing:
            return JSONResponse(
                {"status": "unavailable", "failing": failing, "dependencies": results}, status_code=503
            )
        return JSONResponse({"status": "ready", "dependencies": results})

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
