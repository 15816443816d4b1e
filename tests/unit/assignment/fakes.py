"""In-memory stand-ins for the assignment service's sticky store, exposure publisher and catalog feed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redis.exceptions import ConnectionError as RedisConnectionError

from services.assignment.adapters.sticky import StickyKey, StickyValue
from splitstream.errors import DependencyUnavailable
from splitstream.evaluation import Catalog
from splitstream.events import Exposure
from splitstream.experiment import Experiment


class MemorySticky:
    def __init__(self, *, broken: bool = False) -> None:
        self.records: dict[StickyKey, StickyValue] = {}
        self.lookups: list[list[StickyKey]] = []
        self.broken = broken

    async def lookup(self, wanted: Sequence[StickyKey]) -> dict[StickyKey, StickyValue]:
        if self.broken:
            raise RedisConnectionError("down")
        self.lookups.append(list(wanted))
        return {key: self.records[key] for key in wanted if key in self.records}

    async def record(self, first: Mapping[StickyKey, StickyValue], now_logged: Mapping[StickyKey, str]) -> None:
        if self.broken:
            raise RedisConnectionError("down")
        for key, value in first.items():
            self.records.setdefault(key, value)
        for key, variant in now_logged.items():
            self.records[key] = StickyValue(variant, exposure_logged=True)


class RecordingPublisher:
    def __init__(self, *, fail: bool = False) -> None:
        self.published: list[Exposure] = []
        self.fail = fail

    async def publish(self, events: Sequence[Exposure]) -> None:
        if self.fail:
            raise DependencyUnavailable("kafka: down")
        self.published.extend(events)


class Feed:
    def __init__(self, *experiments: Experiment, loaded: bool = True) -> None:
        self.current = Catalog.of(experiments)
        self.loaded = loaded
