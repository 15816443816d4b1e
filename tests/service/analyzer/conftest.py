"""Fixtures of the analyzer's service tests: an isolated Redis prefix per test, the app, stored experiments."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings
from splitstream.experiment import AnalysisPlan, Experiment, ExperimentStatus, Metric, Variant
from splitstream.registry import ExperimentRegistry

WriteStats = Callable[[str, str, Mapping[str, float | int]], Awaitable[None]]
CreateExperiment = Callable[..., Awaitable[Experiment]]


@pytest.fixture
def settings(common_settings: dict[str, str]) -> AnalyzerSettings:
    return AnalyzerSettings(**common_settings)  # type: ignore[arg-type]


@pytest.fixture
async def client(settings: AnalyzerSettings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://analyzer") as http:
            yield http


@pytest.fixture
def create_experiment(redis: Redis, settings: AnalyzerSettings) -> CreateExperiment:
    """Stores an experiment the way the assignment service does."""

    async def create(
        key: str, variants: list[tuple[str, float]], metrics: list[Metric], analysis: AnalysisPlan | None = None,
        days_running: float = 0.0,
    ) -> Experiment:
        now = datetime.now(UTC)
        experiment = Experiment(
            key=key,
            # Relative weights in, shares summing to 1 stored, as the definition requires.
            variants=[Variant(key=name, weight=weight / sum(w for _, w in variants)) for name, weight in variants],
            metrics=metrics,
            analysis=analysis or AnalysisPlan(),
            status=ExperimentStatus.RUNNING,
            salt="salt",
            created_at=now - timedelta(days=days_running),
            started_at=now - timedelta(days=days_running),
        )
        assert await ExperimentRegistry(redis, settings.redis_keys).create(experiment)
        return experiment

    return create


@pytest.fixture
def write_stats(redis: Redis, settings: AnalyzerSettings) -> WriteStats:
    """Writes a variant hash directly: the analyzer's input contract (splitstream/keys.py)."""

    async def write(experiment: str, variant: str, fields: Mapping[str, float | int]) -> None:
        await redis.hset(settings.redis_keys.variant_stats(experiment, variant), mapping=dict(fields))

    return write
