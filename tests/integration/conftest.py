"""The integration tests' Redis Cluster: three primaries started once per session (tests/redis_cluster.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tests.redis_cluster import LocalCluster, start_cluster


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
async def cluster_redis(local_cluster: LocalCluster, common_settings: dict[str, str]) -> AsyncIterator[RedisCluster]:
    """A cluster client; afterwards every key under the test's prefix is deleted."""
    client = RedisCluster.from_url(local_cluster.url)
    yield client
    async for key in client.scan_iter(match=f"{common_settings['redis_prefix']}:*", count=1000):
        await client.delete(key)
    await client.aclose()


async def copy_to_cluster(source: Redis, target: RedisCluster, prefix: str) -> int:
    """Copy every key under ``prefix`` (experiment definitions and the metric index the registry wrote to the
    standalone Redis) to the cluster; the registry writes in MULTI transactions that span slots, which a cluster
    refuses. Returns the number of keys copied."""
    copied = 0
    async for key in source.scan_iter(match=f"{prefix}:*", count=1000):
        await target.restore(key, 0, await source.dump(key), replace=True)
        copied += 1
    return copied


@dataclass(frozen=True)
class Store:
    """The Redis the consumers fold into: a client, and the URL the consumers are given."""

    client: Redis | RedisCluster
    url: str

    @property
    def clustered(self) -> bool:
        return isinstance(self.client, RedisCluster)


@pytest.fixture(params=["standalone", "cluster"])
def store(request: pytest.FixtureRequest, redis: Redis, redis_url: str, cluster_redis: RedisCluster,
          local_cluster: LocalCluster) -> Store:
    """A test that takes it runs twice: on the stack's standalone Redis, and on the local cluster."""
    return Store(redis, redis_url) if request.param == "standalone" else Store(cluster_redis, local_cluster.url)
