"""The running dev stack as the benchmark sees it: addresses, API keys, experiments, the consumer's progress."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
from redis.asyncio import Redis

from devstack.api_keys import keys_file, load_or_create
from devstack.config import dev_config
from devstack.services import SERVICES, process_of
from services.collector.adapters.fold import read_stats
from splitstream.auth import Scope
from splitstream.keys import RedisKeys
from splitstream.settings import CommonSettings

API_KEY_VARIABLES = {
    Scope.ADMIN: "SPLITSTREAM_ADMIN_KEY",
    Scope.INGEST: "SPLITSTREAM_INGEST_KEY",
    Scope.READ: "SPLITSTREAM_READ_KEY",
}


@dataclass(frozen=True, slots=True)
class DevStack:
    assignment_url: str
    collector_url: str
    analyzer_url: str
    kafka_bootstrap: str
    topic: str
    redis_url: str
    keys: RedisKeys
    api_keys: dict[Scope, str]

    @classmethod
    def discover(cls) -> DevStack:
        """The stack `make up` started, with the same environment overrides it honours."""
        config = dev_config()
        if not keys_file(config).exists():
            raise SystemExit(f"no API keys at {keys_file(config)}: start the dev stack with `make up` first")
        stored = load_or_create(config)
        return cls(
            assignment_url=config.service_url("assignment"),
            collector_url=config.service_url("collector"),
            analyzer_url=config.service_url("analyzer"),
            kafka_bootstrap=config.kafka_bootstrap,
            topic=config.topic,
            redis_url=config.adopt_redis_url or f"redis://127.0.0.1:{config.ports.redis}/0",
            # The services read their prefix from the same environment, so CommonSettings resolves it alike.
            keys=CommonSettings().redis_keys,
            api_keys={scope: stored[variable] for scope, variable in API_KEY_VARIABLES.items()},
        )

    def headers(self, scope: Scope) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_keys[scope]}"}

    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url)


def service_pid(name: str) -> int | None:
    """The pid of the dev stack's ``name`` service (``collector``, ``consumer``...), None when it is not running."""
    config = dev_config()
    return next((process_of(config, spec).pid() for spec in SERVICES if spec.name == name), None)


def run_id() -> str:
    """Distinct per run, so that experiments, event ids and user ids of two runs never meet."""
    return f"{datetime.now(UTC):%m%d%H%M%S}{secrets.token_hex(2)}"


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def create_running_experiment(stack: DevStack, spec: dict[str, Any]) -> None:
    """Create the experiment through the assignment API (admin key) and start it."""
    async with httpx.AsyncClient(base_url=stack.assignment_url, headers=stack.headers(Scope.ADMIN)) as client:
        created = await client.post("/v1/experiments", json=spec)
        if created.status_code != 201:
            raise RuntimeError(f"creating {spec['key']} failed: {created.status_code} {created.text}")
        started = await client.post(f"/v1/experiments/{spec['key']}/start")
        if started.status_code != 200:
            raise RuntimeError(f"starting {spec['key']} failed: {started.status_code} {started.text}")


async def stop_experiment(stack: DevStack, key: str) -> None:
    async with httpx.AsyncClient(base_url=stack.assignment_url, headers=stack.headers(Scope.ADMIN)) as client:
        await client.post(f"/v1/experiments/{key}/stop")


class ConsumerProgress:
    """The consumer's Redis counters: every record it folds ends up applied, a duplicate or poison."""

    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def processed(self) -> int:
        counters = await read_stats(self._redis, self._keys)
        return counters["applied"] + counters["duplicates"] + counters["poison"]

    async def wait_for(self, target: int, *, poll_seconds: float = 0.01) -> float:
        """Poll until ``processed() >= target``; the ``perf_counter`` time of the poll that first saw it.
        Callers bound the wait with ``asyncio.timeout``."""
        while True:
            now = time.perf_counter()
            if await self.processed() >= target:
                return now
            await asyncio.sleep(poll_seconds)

    async def settle(self, *, quiet_seconds: float = 1.0) -> int:
        """Wait until the counters stop moving for ``quiet_seconds`` (a backlog from before us is drained)."""
        last = await self.processed()
        while True:
            await asyncio.sleep(quiet_seconds)
            current = await self.processed()
            if current == last:
                return current
            last = current


@dataclass(frozen=True, slots=True)
class RedisConditions:
    """What the Redis under test held and did, which moves every figure: a big dataset makes each fork (an AOF
    rewrite, a snapshot) copy more while it competes for the same cores."""

    keys: int
    used_memory: int
    forks: int
    """INFO ``total_forks`` since the server started."""


async def redis_conditions(redis: Redis) -> RedisConditions:
    info = await redis.info("all")
    return RedisConditions(await redis.dbsize(), int(info["used_memory"]), int(info.get("total_forks", 0)))


async def delete_matching(redis: Redis, pattern: str, chunk: int = 5_000) -> int:
    """UNLINK every key matching ``pattern``, a chunk per call; how many were deleted."""
    deleted = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=pattern, count=chunk):
        batch.append(key)
        if len(batch) >= chunk:
            deleted += await redis.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await redis.unlink(*batch)
    return deleted


async def redis_cpu_seconds(redis: Redis) -> float:
    """The Redis server's CPU seconds so far (INFO ``used_cpu_user`` + ``used_cpu_sys``, all its threads)."""
    cpu = await redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, interpolated linearly between order statistics."""
    return float(np.percentile(values, q))
