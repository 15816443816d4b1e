"""The group-sequential plan end to end: looks recorded in Redis as the smallest variant crosses k/looks of the
planned horizon, comparisons tested at the latest look, the call, and the end of the test once the goal rejects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.analyzer.adapters.looks import LookLog
from services.analyzer.config import AnalyzerSettings
from services.analyzer.looks import LookRecord
from services.analyzer.stats import EffectKind, compare
from services.analyzer.stats.sequential import group_sequential_test, obrien_fleming_boundaries
from splitstream.experiment import AnalysisMethod, AnalysisPlan, Metric, MetricRole, MetricType
from splitstream.statistics import Proportion
from tests.conftest import auth
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

GOAL = Metric(key="converted", type=MetricType.BINOMIAL, event="purchase", role=MetricRole.GOAL)
REVENUE = Metric(key="revenue", type=MetricType.MEAN, event="purchase")
PLAN = AnalysisPlan(method=AnalysisMethod.GROUP_SEQUENTIAL, planned_users_per_variant=10_000, looks=4,
                    min_users_per_variant=1000, min_days=0)


async def _results(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/experiments/{key}/results", headers=auth("read"))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _write(write_stats: WriteStats, key: str, control: tuple[int, int], treatment: tuple[int, int]) -> None:
    """(users, converted users) per variant; revenue is 10 per converted user, so it moves with the goal."""
    for variant, (users, converted) in (("control", control), ("treatment", treatment)):
        await write_stats(key, variant, {
            "users": users, "converted:sum": converted, "converted:sumsq": converted,
            "revenue:sum": 10.0 * converted, "revenue:sumsq": 100.0 * converted,
        })


def _comparisons(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [comparison for metric in results["metrics"] for comparison in metric["comparisons"]]


def _goal(results: dict[str, Any]) -> dict[str, Any]:
    comparison: dict[str, Any] = results["metrics"][0]["comparisons"][0]
    return comparison


def _assert_tested_at(wire: dict[str, Any], control: tuple[int, int], treatment: tuple[int, int],
                      fractions: list[float]) -> None:
    """The comparison is the engine's group-sequential test of the fixed-horizon estimate of these arms."""
    fixed = compare(Proportion(*control), Proportion(*treatment)).relative
    assert fixed.effect is not None and fixed.std_error is not None
    expected = group_sequential_test(fixed.effect, fixed.std_error, fractions, PLAN.alpha, EffectKind.RELATIVE)
    assert expected.boundary is not None and expected.ci_lower is not None and expected.ci_upper is not None
    assert wire["method"] == "group_sequential" and wire["status"] == "ok" and wire["p_value"] is None
    assert wire["look"] == len(fractions) and wire["information_fraction"] == fractions[-1]
    assert wire["boundary"] == pytest.approx(obrien_fleming_boundaries(fractions)[-1], rel=1e-12)
    assert wire["alpha_spent"] == pytest.approx(expected.alpha_spent, rel=1e-12)
    assert wire["effect"] == pytest.approx(fixed.effect, rel=1e-12)
    assert wire["std_error"] == pytest.approx(fixed.std_error, rel=1e-12)
    assert (wire["ci_lower"], wire["ci_upper"]) == (pytest.approx(expected.ci_lower, rel=1e-12),
                                                    pytest.approx(expected.ci_upper, rel=1e-12))
    assert wire["reject"] is expected.reject


async def test_looks_follow_the_schedule_and_the_test_stops_at_the_rejecting_look(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, unique: str,
    redis: Redis, settings: AnalyzerSettings,
) -> None:
    key = f"gs-{unique}"
    looks_key = settings.redis_keys.looks(key)
    await create_experiment(key, [("control", 1), ("treatment", 1)], [GOAL, REVENUE], PLAN)

    # 2,000 users: the first threshold, 1/4 of 10,000, is not reached.
    await _write(write_stats, key, (2_000, 200), (2_010, 205))
    early = await _results(client, key)
    assert early["looks"] == [] and await redis.llen(looks_key) == 0
    for metric in early["metrics"]:
        comparison = metric["comparisons"][0]
        assert comparison["status"] == "insufficient_data" and comparison["effect"] is None
        assert comparison["reason"].startswith("first scheduled look at 2500 users per variant")
        assert comparison["absolute"]["status"] == "insufficient_data"
    assert early["decisions"][0]["verdict"] == "keep_running"

    # 2,600: look 1 at t = 0.26, a modest effect far from the early boundary.
    look_1 = (2_600, 260), (2_620, 280)
    await _write(write_stats, key, *look_1)
    first = await _results(client, key)
    assert [(look["look"], look["information_fraction"], look["users"]) for look in first["looks"]] == [
        (1, 0.26, {"control": 2_600, "treatment": 2_620})
    ]
    _assert_tested_at(_goal(first), *look_1, [0.26])
    assert _goal(first)["reject"] is False and first["decisions"][0]["verdict"] == "keep_running"
    assert first["metrics"][1]["comparisons"][0]["look"] == 1  # every metric is read at the same look

    # Reading again, even with more data short of the next threshold, neither records a look nor moves the test:
    # the comparisons are those of look 1 (the per-variant summaries are the current data).
    assert _comparisons(await _results(client, key)) == _comparisons(first)
    await _write(write_stats, key, (4_000, 400), (4_020, 480))
    later = await _results(client, key)
    assert _comparisons(later) == _comparisons(first) and later["metrics"][0]["variants"][0]["n"] == 4_000
    assert await redis.llen(looks_key) == 1

    # 5,100: look 2 at t = 0.51, spending over [0.26, 0.51]; the strong effect crosses the boundary: ship.
    look_2 = (5_100, 510), (5_150, 700)
    await _write(write_stats, key, *look_2)
    second = await _results(client, key)
    assert [look["information_fraction"] for look in second["looks"]] == [0.26, 0.51]
    _assert_tested_at(_goal(second), *look_2, [0.26, 0.51])
    assert _goal(second)["reject"] is True and _goal(second)["ci_lower"] > 0
    decision = second["decisions"][0]
    assert decision["verdict"] == "ship", decision["reasons"]

    # Past the third threshold the test is over: no look 3, the rejecting look is still reported.
    await _write(write_stats, key, (7_600, 760), (7_620, 770))
    third = await _results(client, key)
    assert await redis.llen(looks_key) == 2 and len(third["looks"]) == 2
    assert _comparisons(third) == _comparisons(second) and third["decisions"] == second["decisions"]


async def test_concurrent_readers_record_a_look_once(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, unique: str,
    redis: Redis, settings: AnalyzerSettings,
) -> None:
    key = f"race-{unique}"
    await create_experiment(key, [("control", 1), ("treatment", 1)], [GOAL], PLAN)
    await _write(write_stats, key, (3_000, 300), (3_000, 330))

    answers = await asyncio.gather(*(_results(client, key) for _ in range(8)))

    assert await redis.llen(settings.redis_keys.looks(key)) == 1
    assert all(answer["looks"] == answers[0]["looks"] and len(answer["looks"]) == 1 for answer in answers)
    assert all(answer["metrics"] == answers[0]["metrics"] for answer in answers)


async def test_a_look_is_appended_only_as_the_next_one(
    redis: Redis, settings: AnalyzerSettings, unique: str
) -> None:
    log = LookLog(redis, settings.redis_keys)
    record = LookRecord(look=1, threshold=1, users={"a": 30, "b": 31}, planned_users_per_variant=100,
                        information_fraction=0.3, recorded_at=datetime(2024, 5, 1, tzinfo=UTC), cells=[])

    assert await log.append(unique, record) is True
    assert await log.append(unique, record) is False  # look 1 again: someone recorded it already
    assert await log.append(unique, record.model_copy(update={"look": 3})) is False  # look 2 is missing
    assert await log.read(unique) == [record]
    assert await log.read(f"{unique}-none") == []


async def test_other_methods_record_no_looks(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, write_stats: WriteStats, unique: str,
    redis: Redis, settings: AnalyzerSettings,
) -> None:
    key = f"seq-{unique}"
    plan = PLAN.model_copy(update={"method": AnalysisMethod.SEQUENTIAL})
    await create_experiment(key, [("control", 1), ("treatment", 1)], [GOAL], plan)
    await _write(write_stats, key, (5_000, 500), (5_000, 560))

    results = await _results(client, key)

    assert results["looks"] == [] and _goal(results)["look"] is None and _goal(results)["boundary"] is None
    assert await redis.llen(settings.redis_keys.looks(key)) == 0
