"""Alerts posted to a real local HTTP receiver, from results read in a real Redis."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.analyzer.adapters.looks import LookLog
from services.analyzer.adapters.variant_stats import VariantStatsReader
from services.analyzer.alerts import AlertWatcher
from services.analyzer.config import AnalyzerSettings
from services.analyzer.service import ResultsService
from splitstream.experiment import AnalysisPlan, Metric, MetricRole, MetricType
from splitstream.registry import ExperimentRegistry
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

CONVERTED = Metric(key="converted", type=MetricType.BINOMIAL, event="purchase", role=MetricRole.GOAL)
REFUNDED = Metric(key="refunded", type=MetricType.BINOMIAL, event="refund", role=MetricRole.GUARDRAIL,
                  higher_is_better=False, margin=0.01)
PLAN = AnalysisPlan(min_users_per_variant=1000, min_days=0)


class Receiver:
    """A webhook endpoint and a stand-in for the assignment service's stop call, on a real port."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.stops: list[tuple[str, str]] = []
        self.failures_left = 0

    async def webhook(self, request: Request) -> JSONResponse:
        if self.failures_left:
            self.failures_left -= 1
            return JSONResponse({"ok": False}, status_code=500)
        self.messages.append(await request.json())
        return JSONResponse({"ok": True})

    async def stop(self, request: Request) -> JSONResponse:
        self.stops.append((request.path_params["key"], request.headers.get("authorization", "")))
        return JSONResponse({"status": "stopped"})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    state = Receiver()
    app = Starlette(routes=[
        Route("/hook", state.webhook, methods=["POST"]),
        Route("/v1/experiments/{key}/stop", state.stop, methods=["POST"]),
    ])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn signals readiness only by this flag
            await asyncio.sleep(0.01)
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _binomial(write_stats: WriteStats, key: str, variant: str, users: int, **sums: int) -> None:
    fields: dict[str, float | int] = {"users": users}
    for metric, total in sums.items():
        fields[f"{metric}:sum"] = fields[f"{metric}:sumsq"] = total
    await write_stats(key, variant, fields)


def _watcher(
    redis: Redis, settings: AnalyzerSettings, http: httpx.AsyncClient, base: str, **options: Any
) -> AlertWatcher:
    registry = ExperimentRegistry(redis, settings.redis_keys)
    results = ResultsService(registry, VariantStatsReader(redis, settings.redis_keys),
                             LookLog(redis, settings.redis_keys), srm_threshold=settings.srm_threshold)
    return AlertWatcher(registry, results, redis, settings.redis_keys, http, webhook_url=f"{base}/hook",
                        assignment_url=base, admin_key="the-admin-key", **options)


async def test_each_cause_is_posted_once_and_a_harmed_guardrail_stops_the_experiment(
    redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment, write_stats: WriteStats,
    receiver: tuple[Receiver, str],
) -> None:
    state, base = receiver
    await create_experiment("checkout", [("control", 1), ("treatment", 1)], [CONVERTED, REFUNDED], PLAN)
    await _binomial(write_stats, "checkout", "control", 20_000, converted=2_000, refunded=200)
    await _binomial(write_stats, "checkout", "treatment", 20_000, converted=2_600, refunded=600)
    await create_experiment("skewed", [("control", 1), ("treatment", 1)], [CONVERTED], PLAN)
    await _binomial(write_stats, "skewed", "control", 10_000, converted=1_000)
    await _binomial(write_stats, "skewed", "treatment", 12_000, converted=1_200)
    await create_experiment("quiet", [("control", 1), ("treatment", 1)], [CONVERTED], PLAN)
    await _binomial(write_stats, "quiet", "control", 5_000, converted=500)
    await _binomial(write_stats, "quiet", "treatment", 5_000, converted=505)

    async with httpx.AsyncClient() as http:
        watcher = _watcher(redis, settings, http, base, stop_on_harm=True)
        first = await watcher.check_all()
        second = await watcher.check_all()

    assert sorted(alert.cause for alert in first) == ["call:treatment:roll_back", "guardrail:refunded:treatment",
                                                      "srm"]
    assert second == []
    texts = [message["text"] for message in state.messages]
    assert len(texts) == 3
    assert any("Guardrail *refunded* harmed by treatment" in text and "stopped" in text for text in texts)
    assert any("Sample ratio mismatch" in text and "`skewed`" in text for text in texts)
    assert any("roll back" in text for text in texts)
    assert state.stops == [("checkout", "Bearer the-admin-key")]


async def test_a_message_the_webhook_refused_is_sent_again_on_the_next_pass(
    redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment, write_stats: WriteStats,
    receiver: tuple[Receiver, str],
) -> None:
    state, base = receiver
    state.failures_left = 1
    await create_experiment("skewed", [("control", 1), ("treatment", 1)], [CONVERTED], PLAN)
    await _binomial(write_stats, "skewed", "control", 10_000, converted=1_000)
    await _binomial(write_stats, "skewed", "treatment", 12_000, converted=1_200)

    async with httpx.AsyncClient() as http:
        watcher = _watcher(redis, settings, http, base, stop_on_harm=False)
        assert await watcher.check_all() == []
        assert [alert.cause for alert in await watcher.check_all()] == ["srm"]
        assert await watcher.check_all() == []
    assert len(state.messages) == 1 and state.stops == []
