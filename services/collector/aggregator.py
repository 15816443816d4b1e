"""The aggregation loop: read the events topic in batches, fold each batch into Redis, then commit its offsets.

Exactly-once in effect: offsets are committed only after a batch is applied, so a crash in between redelivers
it, and the fold script skips events it has already applied (their ``seen`` marks), so redelivery adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.collector.adapters.fold import FoldOutcome, StatisticsFolder
from services.collector.adapters.kafka import events_consumer
from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent, decode

log = structlog.get_logger(__name__)


class EventRecord(Protocol):
    """What the aggregator reads of a Kafka record (aiokafka's ``ConsumerRecord`` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...


class Aggregator:
    def __init__(
        self, settings: CollectorSettings, redis: Redis, *, poll_timeout_ms: int = 250, retry_seconds: float = 1.0
    ) -> None:
        self._settings = settings
        self._folder = StatisticsFolder(
            redis,
            settings.redis_keys,
            dedup_ttl_seconds=settings.dedup_ttl_seconds,
            pending_ttl_seconds=settings.pending_ttl_seconds,
            pending_max_events=settings.pending_max_events,
        )
        self._poll_timeout_ms = poll_timeout_ms
        self._retry_seconds = retry_seconds
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit it and return; safe from a signal handler."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def process_batch(self, records: Sequence[EventRecord]) -> FoldOutcome:
        """Decode ``records`` and fold them into Redis atomically; undecodable ones are counted, not fatal."""
        events: list[Exposure | TrackEvent] = []
        poison = 0
        for record in records:
            try:
                if record.value is None:
                    raise ValueError("record has no value")
                events.append(decode(record.value))
            except ValueError as error:  # pydantic's ValidationError included
                poison += 1
                log.warning(
                    "undecodable record skipped", topic=record.topic, partition=record.partition,
                    offset=record.offset, error=str(error),
                )
        return await self._folder.apply(events, poison=poison)

    async def run_until_stopped(self) -> None:
        consumer = await self._started_consumer()
        if consumer is None:
            return
        log.info("aggregator consuming", topic=self._settings.events_topic, group=self._settings.consumer_group)
        try:
            while not self.stopping:
                try:
                    batches = await consumer.getmany(
                        timeout_ms=self._poll_timeout_ms, max_records=self._settings.consumer_batch_max
                    )
                except KafkaError as error:
                    log.warning("fetch failed; retrying", error=repr(error))
                    await self._pause()
                    continue
                records = [record for partition_records in batches.values() for record in partition_records]
                if records and await self._apply_with_retries(records):
                    await self._commit(consumer, batches)
        finally:
            await consumer.stop()
            log.info("aggregator stopped")

    async def _started_consumer(self) -> AIOKafkaConsumer | None:
        while not self.stopping:
            consumer = events_consumer(self._settings)
            try:
                await consumer.start()
                return consumer
            except KafkaError as error:
                log.warning("kafka unavailable; retrying", error=repr(error))
                await consumer.stop()
                await self._pause()
        return None

    async def _apply_with_retries(self, records: Sequence[EventRecord]) -> bool:
        """True once applied; False if asked to stop first (the batch is then redelivered to the next run)."""
        while True:
            try:
                outcome = await self.process_batch(records)
            except RedisError as error:
                log.warning("redis unavailable; retrying the batch", error=repr(error), records=len(records))
                if self.stopping:
                    return False
                await self._pause()
                continue
            log.debug("batch applied", records=len(records), outcome=outcome)
            return True

    async def _commit(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Sequence[Any]]) -> None:
        offsets = {partition: records[-1].offset + 1 for partition, records in batches.items() if records}
        try:
            await consumer.commit(offsets)
        except KafkaError as error:
            # Typically a rebalance took the partitions away; their next owner re-reads and deduplicates.
            log.warning("offset commit failed; the batch will be redelivered", error=repr(error))

    async def _pause(self) -> None:
        """Wait before retrying, but return at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=self._retry_seconds)
