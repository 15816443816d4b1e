"""On a real Redis Cluster of three primaries, the fold in steps (one call per node for the users' states, one per
experiment on the node of its slot) leaves exactly what the one-call fold leaves on a standalone Redis: with no
crash, with a crash between steps, with slots moved to another node between batches, and after nodes lost their
scripts."""

from __future__ import annotations

import hashlib

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from services.collector.adapters.fold import FOLD_SCRIPT, FoldMode, StatisticsFolder
from services.collector.adapters.fold_steps import SteppedFolder
from splitstream.keys import RedisKeys
from splitstream.registry import ExperimentRegistry
from tests.integration.conftest import copy_to_cluster
from tests.redis_cluster import LocalCluster
from tests.service.collector.fold_workload import (
    BATCH,
    LIMITS,
    CrashingFolder,
    contents,
    experiments,
    fold_in_batches,
    workload,
)

pytestmark = pytest.mark.integration
FOLD_SHA = hashlib.sha1(FOLD_SCRIPT.encode()).hexdigest()


async def _defined(redis: Redis, cluster: RedisCluster, prefix: str) -> RedisKeys:
    keys = RedisKeys(prefix)
    for experiment in experiments():
        assert await ExperimentRegistry(redis, keys).create(experiment)
    assert await copy_to_cluster(redis, cluster, prefix) > 0
    return keys


def _nodes_written(cluster: LocalCluster, prefix: str) -> int:
    return sum(1 for index in range(3) if cluster.node(index).keys(f"{prefix}:*"))


@pytest.mark.parametrize("crash_at", [None, ("decide", 2), ("experiments", 3), ("record", 2)])
async def test_the_steps_on_a_cluster_leave_what_one_call_leaves_on_one_redis(
    redis: Redis, cluster_redis: RedisCluster, local_cluster: LocalCluster, common_settings: dict[str, str],
    crash_at: tuple[FoldMode, int] | None,
) -> None:
    keys = await _defined(redis, cluster_redis, common_settings["redis_prefix"])
    events = workload(seed=11)

    await fold_in_batches(StatisticsFolder(redis, keys, **LIMITS), events)
    folder = (SteppedFolder(cluster_redis, keys, LIMITS) if crash_at is None
              else CrashingFolder(cluster_redis, keys, crash_at))
    await fold_in_batches(folder, events)

    expected = await contents(redis, keys)
    assert any(":pending:" in key for key in expected) and any(":users:" in key for key in expected)
    assert await contents(cluster_redis, keys) == expected
    assert _nodes_written(local_cluster, keys.prefix) == 3  # the keys are spread over every node


async def test_the_steps_follow_slots_moved_to_other_nodes_and_nodes_that_lost_the_script(
    redis: Redis, cluster_redis: RedisCluster, local_cluster: LocalCluster, common_settings: dict[str, str],
) -> None:
    keys = await _defined(redis, cluster_redis, common_settings["redis_prefix"])
    events = workload(seed=12)
    await fold_in_batches(StatisticsFolder(redis, keys, **LIMITS), events)
    # The slots of the next batch's first users and of one experiment go to the next node, behind the client's back.
    next_batch_users = sorted({event.user_id for event in events[2 * BATCH:3 * BATCH]})[:5]
    moved = {cluster_redis.keyslot(keys.user_state(user)) for user in next_batch_users}
    moved.add(cluster_redis.keyslot(keys.experiment("first")))
    owners_before = {slot: local_cluster.owner_of(slot) for slot in moved}

    async def reshard(number: int) -> None:
        if number == 1:
            for slot, owner in owners_before.items():
                local_cluster.move_slot(slot, (owner + 1) % 3)
        if number == 3:  # as a restarted node has no scripts
            for index in range(3):
                local_cluster.node(index).script_flush()

    failed = await fold_in_batches(SteppedFolder(cluster_redis, keys, LIMITS), events, after_batch=reshard)

    assert all(local_cluster.owner_of(slot) != owner for slot, owner in owners_before.items())
    assert failed >= 1  # a step met a node that no longer serves a slot, and the batch was folded again
    assert all(local_cluster.node(index).script_exists(FOLD_SHA) == [True] for index in range(3))  # loaded again
    assert await contents(cluster_redis, keys) == await contents(redis, keys)
