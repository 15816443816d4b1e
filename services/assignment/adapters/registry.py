"""The experiment registry as the service sees it: Redis failures become 503s naming Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from splitstream.errors import DependencyUnavailable
from splitstream.experiment import Experiment
from splitstream.registry import ExperimentRegistry


@contextmanager
def _redis_answers() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as error:
        raise DependencyUnavailable(f"redis: {error!r}") from error


class GuardedRegistry:
    """Delegates to :class:`ExperimentRegistry`; only the error type changes."""

    def __init__(self, registry: ExperimentRegistry) -> None:
        self._registry = registry

    async def create(self, experiment: Experiment) -> bool:
        with _redis_answers():
            return await self._registry.create(experiment)

    async def replace(self, experiment: Experiment) -> None:
        with _redis_answers():
            await self._registry.replace(experiment)

    async def get(self, key: str) -> Experiment | None:
        with _redis_answers():
            return await self._registry.get(key)

    async def get_all(self) -> list[Experiment]:
        """Every stored experiment, ordered by key; one that vanished between the two reads is left out."""
        with _redis_answers():
            keys = await self._registry.list_keys()
            found = await asyncio.gather(*(self._registry.get(key) for key in keys))
        return [experiment for experiment in found if experiment is not None]
