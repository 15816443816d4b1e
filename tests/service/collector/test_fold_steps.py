"""The fold in three steps (the way to Redis Cluster) leaves exactly what the one-call fold leaves, also when a crash
cuts a batch between its steps and the batch is folded again."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.collector.adapters.fold import FoldMode, StatisticsFolder
from services.collector.adapters.fold_steps import SteppedFolder
from splitstream.keys import RedisKeys
from splitstream.registry import ExperimentRegistry
from tests.service.collector.fold_workload import (
    LIMITS,
    CrashingFolder,
    contents,
    experiments,
    fold_in_batches,
    workload,
)


@pytest.mark.parametrize("crash_at", [None, ("decide", 2), ("experiments", 3), ("record", 2)])
async def test_three_steps_leave_what_one_call_leaves_even_cut_by_a_crash(
    redis: Redis, common_settings: dict[str, str], crash_at: tuple[FoldMode, int] | None
) -> None:
    one_call, stepped = (RedisKeys(f"{common_settings['redis_prefix']}:{name}") for name in ("one", "steps"))
    for keys in (one_call, stepped):
        for experiment in experiments():
            assert await ExperimentRegistry(redis, keys).create(experiment)
    events = workload(seed=7)

    await fold_in_batches(StatisticsFolder(redis, one_call, **LIMITS), events)
    folder = SteppedFolder(redis, stepped, LIMITS) if crash_at is None else CrashingFolder(redis, stepped, crash_at)
    await fold_in_batches(folder, events)

    expected = await contents(redis, one_call)
    assert any(b"conv:xsum" in value for value in expected.values() if isinstance(value, dict))  # CUPED is there
    assert any(":pending:" in key for key in expected)  # and events that wait
    assert await contents(redis, stepped) == expected
    if crash_at is None:  # the counters are added up outside the steps: a crash may leave them off by a batch
        assert await redis.get(stepped.stats("applied")) == await redis.get(one_call.stats("applied"))
        assert await redis.get(stepped.stats("duplicates")) == await redis.get(one_call.stats("duplicates"))
