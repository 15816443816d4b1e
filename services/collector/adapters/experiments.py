"""Which variants each experiment has, read from the registry and cached: an experiment's variants never change
after creation, so only the not-yet-created case needs a fresh read."""

from __future__ import annotations

from cachetools import TTLCache
from redis.exceptions import RedisError

from splitstream.errors import DependencyUnavailable
from splitstream.registry import ExperimentRegistry


class VariantCatalog:
    def __init__(self, registry: ExperimentRegistry, *, cache_seconds: float = 60.0, max_experiments: int = 10_000):
        self._registry = registry
        self._known: TTLCache[str, frozenset[str]] = TTLCache(maxsize=max_experiments, ttl=cache_seconds)

    async def variants_of(self, experiment: str) -> frozenset[str] | None:
        """The experiment's variant keys, or None if no such experiment exists."""
        cached = self._known.get(experiment)
        if cached is not None:
            return cached
        try:
            definition = await self._registry.get(experiment)
        except RedisError as error:
            raise DependencyUnavailable(f"redis: cannot read experiment {experiment!r} ({error!r})") from error
        if definition is None:
            return None
        variants = frozenset(definition.variant_keys())
        self._known[experiment] = variants
        return variants
