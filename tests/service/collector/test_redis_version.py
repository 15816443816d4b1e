"""The consumer's server check passes on the Redis the stack runs (Debian's 7.0 here, standalone)."""

from __future__ import annotations

from redis.asyncio import Redis

from services.collector.adapters.fold import MIN_REDIS_VERSION, check_redis_server, version_tuple


async def test_the_stacks_redis_is_new_enough_and_standalone(redis: Redis) -> None:
    await check_redis_server(redis)
    assert version_tuple(str((await redis.info("server"))["redis_version"])) >= MIN_REDIS_VERSION
    assert int((await redis.info("cluster"))["cluster_enabled"]) == 0
