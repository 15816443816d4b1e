"""Definitions in Redis: experiments (through the shared registry), layers, holdouts and the audit trail.

Every method turns a Redis failure into ``DependencyUnavailable`` (503 naming Redis).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from services.assignment.audit import AuditEntry
from splitstream.errors import DependencyUnavailable
from splitstream.evaluation import CatalogDocument
from splitstream.experiment import Experiment
from splitstream.keys import RedisKeys
from splitstream.layers import Holdout, Layer
from splitstream.registry import ExperimentRegistry

LOCK_SECONDS = 10.0


@contextmanager
def _redis_answers() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as error:
        raise DependencyUnavailable(f"redis: {error!r}") from error


class DefinitionStore:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys
        self._registry = ExperimentRegistry(redis, keys)

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Serialises definition changes across instances: versions and layer buckets are read-modify-write."""
        lock = self._redis.lock(self._keys.definitions_lock, timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)
        with _redis_answers():
            if not await lock.acquire():
                raise DependencyUnavailable("redis: another definition change holds the lock; retry")
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockError:  # expired while we worked: the next writer already proceeds
                pass
            except (RedisError, OSError):
                pass  # it expires on its own

    async def create_experiment(self, experiment: Experiment, entry: AuditEntry) -> bool:
        with _redis_answers():
            if not await self._registry.create(experiment):
                return False
            await self._redis.rpush(self._keys.history(experiment.key), entry.model_dump_json())
        return True

    async def replace_experiment(self, experiment: Experiment, previous: Experiment, entry: AuditEntry) -> None:
        with _redis_answers():
            await self._registry.replace(experiment, previous)
            await self._redis.rpush(self._keys.history(experiment.key), entry.model_dump_json())

    async def experiment(self, key: str) -> Experiment | None:
        with _redis_answers():
            return await self._registry.get(key)

    async def experiments(self) -> list[Experiment]:
        with _redis_answers():
            return await self._registry.get_all()

    async def history(self, key: str) -> list[AuditEntry]:
        with _redis_answers():
            raws = await self._redis.lrange(self._keys.history(key), 0, -1)
        return [AuditEntry.model_validate_json(raw) for raw in raws]

    async def create_layer(self, layer: Layer) -> bool:
        return await self._create(self._keys.layers, layer)

    async def layers(self) -> list[Layer]:
        with _redis_answers():
            raws = await self._redis.hgetall(self._keys.layers)
        return sorted((Layer.model_validate_json(raw) for raw in raws.values()), key=lambda layer: layer.key)

    async def create_holdout(self, holdout: Holdout) -> bool:
        return await self._create(self._keys.holdouts, holdout)

    async def holdouts(self) -> list[Holdout]:
        with _redis_answers():
            return await self._registry.holdouts()

    async def document(self) -> CatalogDocument:
        """Everything an evaluation needs, read afresh."""
        return CatalogDocument(
            experiments=await self.experiments(), layers=await self.layers(), holdouts=await self.holdouts()
        )

    async def announce(self, key: str) -> None:
        """Tell every assignment worker that ``key`` changed (they reload within a second)."""
        with _redis_answers():
            await self._redis.publish(self._keys.definitions_changed, key)

    async def _create(self, hash_key: str, model: BaseModel) -> bool:
        key = getattr(model, "key")  # noqa: B009 - Layer and Holdout both have one
        with _redis_answers():
            return bool(await self._redis.hsetnx(hash_key, key, model.model_dump_json()))
