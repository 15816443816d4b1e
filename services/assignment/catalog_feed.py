"""The in-memory catalog the hot path evaluates against, kept within a second of the definitions in Redis.

Every change is announced on a Redis pub/sub channel; each worker reloads the definitions when a message arrives
(changes arriving together are folded into one reload), and also every ``resync_seconds`` in case a message was
missed (pub/sub does not replay to a worker that was reconnecting).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.assignment.adapters.definitions import DefinitionStore
from splitstream.errors import DependencyUnavailable
from splitstream.evaluation import Catalog, CatalogDocument

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.2
"""How long one wait for a change message lasts; a message is acted on as soon as it arrives."""


class CatalogFeed:
    def __init__(
        self, store: DefinitionStore, redis: Redis, channel: str, *, resync_seconds: float = 5.0
    ) -> None:
        self._store = store
        self._redis = redis
        self._channel = channel
        self._resync_seconds = resync_seconds
        self.current = Catalog(CatalogDocument())
        self.loaded = False
        """Whether the catalog was read from Redis at least once (readiness)."""
        self._stopping = asyncio.Event()

    async def reload(self) -> Catalog:
        document = await self._store.document()
        if document != self.current.document:
            self.current = Catalog(document)
        self.loaded = True
        return self.current

    @asynccontextmanager
    async def following(self) -> AsyncIterator[CatalogFeed]:
        """Load now (if Redis answers) and keep following changes until the block exits."""
        with contextlib.suppress(DependencyUnavailable):
            await self.reload()
        self._stopping.clear()
        task = asyncio.create_task(self._follow(), name="catalog-feed")
        try:
            yield self
        finally:
            # redis-py's pub/sub read can swallow a cancellation and keep waiting, so the loop is told to stop and
            # polls often enough to hear it; cancelling stays as the fallback.
            self._stopping.set()
            try:
                await asyncio.wait_for(task, timeout=2 * POLL_SECONDS + 1.0)
            except TimeoutError:
                log.warning("catalog feed did not stop in time")

    async def _follow(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._listen()
            except (RedisError, OSError, DependencyUnavailable) as error:
                log.warning("catalog feed lost redis; retrying", error=repr(error))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=1.0)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            await self.reload()  # whatever changed while we were not subscribed
            resync_at = loop.time() + self._resync_seconds
            while not self._stopping.is_set():
                message = await pubsub.get_message(timeout=POLL_SECONDS)
                if message is None and loop.time() < resync_at:
                    continue
                # A burst of changes (a ramp, a batch of edits) costs one reload.
                while message is not None:
                    message = await pubsub.get_message(timeout=0.01)
                await self.reload()
                resync_at = loop.time() + self._resync_seconds
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2 on
