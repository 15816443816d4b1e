"""The experiment gauges on /metrics: set by the scheduled refresh from the results, removed with the experiment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from services.analyzer.adapters.looks import LookLog
from services.analyzer.adapters.variant_stats import VariantStatsReader
from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings
from services.analyzer.gauges import GaugeRefresher
from services.analyzer.service import ResultsService
from splitstream.experiment import AnalysisMethod, AnalysisPlan, Metric, MetricType
from splitstream.registry import ExperimentRegistry
from tests.conftest import auth
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

CONVERTED = Metric(key="converted", type=MetricType.BINOMIAL, event="purchase")
REVENUE = Metric(key="revenue", type=MetricType.MEAN, event="purchase")


async def _scrape(client: httpx.AsyncClient, experiment: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``experiment`` on /metrics, by name and labels."""
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.labels.get("experiment") == experiment
    }


def _cell(experiment: str, variant: str, metric: str) -> frozenset[tuple[str, str]]:
    return frozenset({"experiment": experiment, "variant": variant, "metric": metric}.items())


async def _results(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/experiments/{key}/results", headers=auth("read"))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _delete(redis: Redis, settings: AnalyzerSettings, key: str) -> None:
    await redis.srem(settings.redis_keys.experiments, key)
    await redis.delete(settings.redis_keys.experiment(key))


@pytest.fixture
def refresher(redis: Redis, settings: AnalyzerSettings) -> Iterator[GaugeRefresher]:
    """A refresher wired as the analyzer's lifespan wires its own; the gauges live in the process registry."""
    registry = ExperimentRegistry(redis, settings.redis_keys)
    results = ResultsService(
        registry, VariantStatsReader(redis, settings.redis_keys), LookLog(redis, settings.redis_keys),
        srm_threshold=settings.srm_threshold,
    )
    refresher = GaugeRefresher(registry, results)
    yield refresher
    refresher.forget()


@pytest.fixture
async def quiet_client(settings: AnalyzerSettings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its own refresh loop off, so only the test's refreshes set the gauges."""
    quiet = settings.model_copy(update={"gauge_refresh_seconds": 0})
    async with LifespanManager(create_app(quiet)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://analyzer") as http:
            yield http


async def _two_variants(create_experiment: CreateExperiment, write_stats: WriteStats, key: str,
                        analysis: AnalysisPlan | None = None) -> None:
    await create_experiment(key, [("control", 1), ("b", 1)], [CONVERTED, REVENUE], analysis)
    await write_stats(key, "control", {"users": 4_000, "converted:sum": 400, "converted:sumsq": 400,
                                       "revenue:sum": 10_000.0, "revenue:sumsq": 90_000.0})
    await write_stats(key, "b", {"users": 4_050, "converted:sum": 470, "converted:sumsq": 470,
                                 "revenue:sum": 10_500.0, "revenue:sumsq": 95_000.0})


async def test_one_refresh_publishes_the_results(
    quiet_client: httpx.AsyncClient, refresher: GaugeRefresher, create_experiment: CreateExperiment,
    write_stats: WriteStats, unique: str,
) -> None:
    key = f"gauges-{unique}"
    await _two_variants(create_experiment, write_stats, key)
    assert await _scrape(quiet_client, key) == {}, "nothing is computed before a refresh"

    await refresher.refresh()

    scraped = await _scrape(quiet_client, key)
    results = await _results(quiet_client, key)
    for metric in results["metrics"]:
        comparison = metric["comparisons"][0]
        cell = _cell(key, "b", metric["key"])
        assert scraped[("splitstream_effect", cell)] == pytest.approx(comparison["effect"], rel=1e-12)
        assert scraped[("splitstream_effect_ci_lower", cell)] == pytest.approx(comparison["ci_lower"], rel=1e-12)
        assert scraped[("splitstream_effect_ci_upper", cell)] == pytest.approx(comparison["ci_upper"], rel=1e-12)
        assert scraped[("splitstream_p_value", cell)] == pytest.approx(comparison["p_value"], rel=1e-12)
        assert ("splitstream_chance_to_win", cell) not in scraped, "a frequentist plan gives no chance to win"
        for variant in metric["variants"]:
            mean = scraped[("splitstream_metric_mean", _cell(key, variant["key"], metric["key"]))]
            assert mean == pytest.approx(variant["mean"], rel=1e-12)
    assert scraped[("splitstream_users", frozenset({"experiment": key, "variant": "b"}.items()))] == 4_050
    assert scraped[("splitstream_srm_p_value", frozenset({"experiment": key}.items()))] == pytest.approx(
        results["srm"]["p_value"], rel=1e-12
    )


async def test_a_deleted_experiment_leaves_after_the_next_refresh(
    quiet_client: httpx.AsyncClient, refresher: GaugeRefresher, create_experiment: CreateExperiment,
    write_stats: WriteStats, redis: Redis, settings: AnalyzerSettings, unique: str,
) -> None:
    gone, kept = f"gone-{unique}", f"kept-{unique}"
    await _two_variants(create_experiment, write_stats, gone)
    await _two_variants(create_experiment, write_stats, kept, AnalysisPlan(method=AnalysisMethod.BAYESIAN))
    await refresher.refresh()
    assert await _scrape(quiet_client, gone)
    bayesian = await _scrape(quiet_client, kept)
    assert ("splitstream_chance_to_win", _cell(kept, "b", "converted")) in bayesian

    await _delete(redis, settings, gone)
    await refresher.refresh()

    assert await _scrape(quiet_client, gone) == {}
    assert await _scrape(quiet_client, kept) == bayesian


async def test_one_broken_experiment_does_not_stop_the_others(
    quiet_client: httpx.AsyncClient, refresher: GaugeRefresher, create_experiment: CreateExperiment,
    write_stats: WriteStats, redis: Redis, settings: AnalyzerSettings, unique: str,
) -> None:
    broken, fine = f"broken-{unique}", f"fine-{unique}"
    await _two_variants(create_experiment, write_stats, broken)
    await _two_variants(create_experiment, write_stats, fine)
    await redis.set(settings.redis_keys.experiment(broken), b"{not json")
    before = await _error_count(quiet_client)

    await refresher.refresh()

    assert await _error_count(quiet_client) == before + 1
    assert ("splitstream_effect", _cell(fine, "b", "revenue")) in await _scrape(quiet_client, fine)


async def _error_count(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "splitstream_gauge_refresh_errors")
    return next(s.value for s in family.samples if s.name == "splitstream_gauge_refresh_errors_total")


async def test_the_lifespan_refreshes_on_its_schedule(
    settings: AnalyzerSettings, redis: Redis, create_experiment: CreateExperiment, write_stats: WriteStats,
    unique: str,
) -> None:
    key = f"scheduled-{unique}"
    await _two_variants(create_experiment, write_stats, key)
    fast = settings.model_copy(update={"gauge_refresh_seconds": 0.05})
    async with LifespanManager(create_app(fast)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://analyzer") as http:
            assert await _eventually(lambda: _has_effect(http, key), True)
            await _delete(redis, settings, key)
            assert await _eventually(lambda: _has_effect(http, key), False)


async def _has_effect(client: httpx.AsyncClient, key: str) -> bool:
    return ("splitstream_effect", _cell(key, "b", "revenue")) in await _scrape(client, key)


async def _eventually(probe: Callable[[], Awaitable[bool]], wanted: bool) -> bool:
    """Whether ``probe`` answers ``wanted`` within about 5 s (a hundred refresh periods)."""
    for _ in range(250):
        if await probe() == wanted:
            return True
        await asyncio.sleep(0.02)
    return False


