"""The experiment registry in Redis (and the holdouts): the assignment service writes it; the consumer and analyzer
read it."""

from __future__ import annotations

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis

from splitstream.experiment import Experiment
from splitstream.keys import RedisKeys, metric_index_entry, stats_scope
from splitstream.layers import Holdout

log = structlog.get_logger(__name__)


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
            for event, entry in _index_entries(experiment):
                pipe.sadd(self._keys.event_metrics(event), entry)
            await pipe.execute()
        return True

    async def replace(self, experiment: Experiment, previous: Experiment) -> None:
        """Overwrite an existing experiment; the event index follows its metrics and its phase."""
        old_entries, new_entries = _index_entries(previous), _index_entries(experiment)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.experiment(experiment.key), experiment.model_dump_json(), xx=True)
            for event, entry in old_entries - new_entries:
                pipe.srem(self._keys.event_metrics(event), entry)
            for event, entry in new_entries - old_entries:
                pipe.sadd(self._keys.event_metrics(event), entry)
            await pipe.execute()

    async def get(self, key: str) -> Experiment | None:
        raw = await self._redis.get(self._keys.experiment(key))
        return None if raw is None else Experiment.model_validate_json(raw)

    async def holdouts(self) -> list[Holdout]:
        """Every holdout definition (written by the assignment service), ordered by key."""
        raws = await self._redis.hgetall(self._keys.holdouts)
        return sorted((Holdout.model_validate_json(raw) for raw in raws.values()), key=lambda holdout: holdout.key)

    async def list_keys(self) -> list[str]:
        members = await self._redis.smembers(self._keys.experiments)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def get_all(self) -> list[Experiment]:
        """Every stored experiment, ordered by key (one MGET). One that vanished between the two reads is left out,
        and so is one that no longer reads as a definition (stored by an older version, damaged): logged, so that
        one bad record cannot take every other experiment out of the assignment catalog."""
        keys = await self.list_keys()
        if not keys:
            return []
        raws = await self._redis.mget([self._keys.experiment(key) for key in keys])
        found = []
        for key, raw in zip(keys, raws, strict=True):
            if raw is None:
                continue
            try:
                found.append(Experiment.model_validate_json(raw))
            except ValidationError as error:
                log.error("unreadable_experiment_definition", experiment=key, error=str(error))
        return found


def _index_entries(experiment: Experiment) -> set[tuple[str, str]]:
    """(event name, index entry) of every event that feeds a metric of the experiment's current phase."""
    scope = stats_scope(experiment.key, experiment.phase)
    return {
        (event, metric_index_entry(scope, metric.key, role))
        for metric in experiment.metrics for event, role in metric.feeds()
    }
