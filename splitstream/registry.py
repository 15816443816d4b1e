"""The experiment registry in Redis: the assignment service writes it; the consumer and analyzer read it."""

from __future__ import annotations

from redis.asyncio import Redis

from splitstream.experiment import Experiment
from splitstream.keys import RedisKeys, metric_index_entry


class ExperimentRegistry:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def create(self, experiment: Experiment) -> bool:
        """Store a new experiment; False if the key is taken. Also indexes its metrics by event name."""
        created = await self._redis.set(
            self._keys.experiment(experiment.key), experiment.model_dump_json(), nx=True
        )
        if not created:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._keys.experiments, experiment.key)
            for metric in experiment.metrics:
                pipe.sadd(
                    self._keys.event_metrics(metric.event),
                    metric_index_entry(experiment.key, metric.key, metric.type.value),
                )
            await pipe.execute()
        return True

    async def replace(self, experiment: Experiment) -> None:
        """Overwrite an existing experiment's lifecycle fields (status, timestamps); the spec is immutable."""
        await self._redis.set(self._keys.experiment(experiment.key), experiment.model_dump_json(), xx=True)

    async def get(self, key: str) -> Experiment | None:
        raw = await self._redis.get(self._keys.experiment(key))
        return None if raw is None else Experiment.model_validate_json(raw)

    async def list_keys(self) -> list[str]:
        members = await self._redis.smembers(self._keys.experiments)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
