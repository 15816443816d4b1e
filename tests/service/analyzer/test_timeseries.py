"""Snapshots and the time series, against a real Redis holding hand-written sufficient statistics."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings
from services.analyzer.stats import compare
from splitstream.experiment import HOLDOUT_ARM, ExperimentStatus, Metric, MetricType
from splitstream.keys import stats_scope
from splitstream.registry import ExperimentRegistry
from splitstream.statistics import Proportion
from tests.conftest import auth
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

CONVERTED = Metric(key="converted", type=MetricType.BINOMIAL, event="purchase")
# (control users, control conversions, treatment users, treatment conversions) at each snapshot
STEPS = [(1_000, 100, 1_010, 118), (4_000, 410, 4_020, 480)]


async def _write(write_stats: WriteStats, scope: str, step: tuple[int, int, int, int]) -> None:
    control_users, control_conversions, treatment_users, treatment_conversions = step
    await write_stats(scope, "control", {"users": control_users, "converted:sum": control_conversions,
                                         "converted:sumsq": control_conversions})
    await write_stats(scope, "treatment", {"users": treatment_users, "converted:sum": treatment_conversions,
                                           "converted:sumsq": treatment_conversions})


async def test_each_snapshot_is_a_point_with_the_cumulative_effect_then(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats
) -> None:
    await create_experiment("titles", [("control", 1), ("treatment", 1)], [CONVERTED])
    taken = []
    for step in STEPS:
        await _write(write_stats, "titles", step)
        answer = await client.post("/v1/experiments/titles/snapshots", headers=auth("admin"))
        assert answer.status_code == 201, answer.text
        taken.append(answer.json())

    series = (await client.get("/v1/experiments/titles/timeseries", headers=auth("read"))).json()

    assert (series["experiment"], series["phase"], series["method"]) == ("titles", 1, "frequentist")
    assert [point["at"] for point in series["points"]] == [snapshot["at"] for snapshot in taken]
    assert datetime.fromisoformat(taken[0]["at"]) <= datetime.fromisoformat(taken[1]["at"])
    for point, (cu, cc, tu, tc) in zip(series["points"], STEPS, strict=True):
        assert point["users"] == {"control": cu, "treatment": tu}
        expected = compare(Proportion(cu, cc), Proportion(tu, tc)).relative
        [comparison] = point["metrics"][0]["comparisons"]
        assert comparison["variant"] == "treatment" and comparison["status"] == "ok"
        for name in ("effect", "ci_lower", "ci_upper", "p_value"):
            assert comparison[name] == pytest.approx(getattr(expected, name), rel=1e-9), name
    assert (await client.post("/v1/experiments/titles/snapshots", headers=auth("read"))).status_code == 403
    missing = await client.get("/v1/experiments/nope/timeseries", headers=auth("read"))
    assert missing.status_code == 404


async def test_with_held_out_users_each_point_also_compares_every_arm_with_them(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats
) -> None:
    await create_experiment("push", [("control", 1), ("treatment", 1)], [CONVERTED])
    await _write(write_stats, "push", STEPS[0])
    await client.post("/v1/experiments/push/snapshots", headers=auth("admin"))  # before any held-out user
    await _write(write_stats, "push", STEPS[1])
    held_users, held_conversions = 400, 30
    await write_stats("push", HOLDOUT_ARM, {"users": held_users, "converted:sum": held_conversions,
                                            "converted:sumsq": held_conversions})
    await client.post("/v1/experiments/push/snapshots", headers=auth("admin"))

    before, after = (await client.get("/v1/experiments/push/timeseries", headers=auth("read"))).json()["points"]

    assert before["holdout"] is None
    assert after["users"] == {"control": STEPS[1][0], "treatment": STEPS[1][2]}  # the variants' own, as before
    assert after["holdout"]["users"] == held_users
    cu, cc, tu, tc = STEPS[1]
    held = Proportion(held_users, held_conversions)
    expected = {"control": compare(held, Proportion(cu, cc)).relative,
                "treatment": compare(held, Proportion(tu, tc)).relative,
                "(all variants)": compare(held, Proportion(cu + tu, cc + tc)).relative}
    [metric] = after["holdout"]["metrics"]
    assert [comparison["variant"] for comparison in metric["comparisons"]] == list(expected)
    for comparison in metric["comparisons"]:
        for name in ("effect", "ci_lower", "ci_upper", "p_value"):
            assert comparison[name] == pytest.approx(getattr(expected[comparison["variant"]], name), rel=1e-9)


async def test_a_new_phase_starts_an_empty_series(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, redis: Redis,
    settings: AnalyzerSettings,
) -> None:
    first = await create_experiment("phased", [("control", 1), ("treatment", 1)], [CONVERTED])
    await _write(write_stats, "phased", STEPS[0])
    await client.post("/v1/experiments/phased/snapshots", headers=auth("admin"))
    await ExperimentRegistry(redis, settings.redis_keys).replace(first.model_copy(update={"phase": 2}), first)

    assert (await client.get("/v1/experiments/phased/timeseries", headers=auth("read"))).json()["points"] == []
    await _write(write_stats, stats_scope("phased", 2), STEPS[1])
    await client.post("/v1/experiments/phased/snapshots", headers=auth("admin"))
    [point] = (await client.get("/v1/experiments/phased/timeseries", headers=auth("read"))).json()["points"]
    assert point["users"] == {"control": STEPS[1][0], "treatment": STEPS[1][2]}


async def test_running_experiments_are_snapshotted_on_schedule_and_stopped_ones_are_not(
    settings: AnalyzerSettings, create_experiment: CreateExperiment, write_stats: WriteStats, redis: Redis,
) -> None:
    running = await create_experiment("live", [("control", 1), ("treatment", 1)], [CONVERTED])
    stopped = await create_experiment("over", [("control", 1), ("treatment", 1)], [CONVERTED])
    await ExperimentRegistry(redis, settings.redis_keys).replace(
        stopped.model_copy(update={"status": ExperimentStatus.STOPPED}), stopped
    )
    await _write(write_stats, "live", STEPS[0])
    app = create_app(settings.model_copy(update={"snapshot_interval_seconds": 0.1, "gauge_refresh_seconds": 0}))
    async with LifespanManager(app):
        await asyncio.sleep(0.55)
    live = await redis.llen(settings.redis_keys.snapshots(running.key))
    assert 3 <= live <= 6
    assert await redis.llen(settings.redis_keys.snapshots("over")) == 0
