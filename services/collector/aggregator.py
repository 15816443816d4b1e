"""The aggregation loop: read the events topic in batches, fold each batch into Redis, then commit its offsets.

Exactly-once in effect: offsets are committed only after a batch is applied (one fold call is in flight while
the next batch is fetched and decoded), so a crash in between redelivers it, and the fold script skips events it
has already applied (their dedup marks), so redelivery adds nothing. On Redis Cluster a batch is folded in steps
(``adapters/fold_steps.py``), each of which a redelivery repeats without effect.

Records that are not valid events go to the dead-letter topic, acknowledged before the batch's offsets are
committed, so none is lost; a redelivered batch may set the same record aside twice (at-least-once there).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from services.collector.adapters.fold import FoldLimits, FoldOutcome, StatisticsFolder
from services.collector.adapters.fold_steps import RecordSource, SteppedFolder
from services.collector.adapters.kafka import DeadLetterProducer, events_consumer
from services.collector.config import CollectorSettings
from services.collector.decoding import DeadLetter, DecodedBatch, EventRecord, decode_records
from services.collector.metrics import CONSUMER_EVENTS, CONSUMER_LAG
from splitstream.errors import DependencyUnavailable
from splitstream.eventlog import Connectable
from splitstream.keys import RedisKeys
from splitstream.redis_client import AnyRedis

log = structlog.get_logger(__name__)

_RETRIED = (RedisError, KafkaError, DependencyUnavailable)
C = TypeVar("C", bound=Connectable)
CallT = TypeVar("CallT")


def fold_limits(settings: CollectorSettings) -> FoldLimits:
    return FoldLimits(
        dedup_ttl_seconds=settings.dedup_ttl_seconds,
        pending_ttl_seconds=settings.pending_ttl_seconds,
        pending_max_events=settings.pending_max_events,
        lateness_seconds=settings.lateness_seconds,
        max_segment_values=settings.max_segment_values,
    )


def statistics_folder(settings: CollectorSettings, redis: Redis, keys: RedisKeys) -> StatisticsFolder:
    """The fold with the settings' limits, writing under ``keys`` (the live prefix, or a rebuild's)."""
    return StatisticsFolder(redis, keys, **fold_limits(settings))


class PendingOutcome(Protocol):
    async def outcome(self) -> FoldOutcome: ...


class BatchFolder(Protocol[CallT]):
    """How a batch is folded: in one atomic call (:class:`StatisticsFolder`), or in steps on a cluster
    (:class:`SteppedFolder`); a call is built, then sent, then its outcome read."""

    def call(
        self, events: Sequence[Any], arrivals_ms: Sequence[int], *, poison: int = 0,
        sources: Sequence[RecordSource] | None = None,
    ) -> CallT: ...
    async def send(self, call: CallT) -> PendingOutcome: ...
    async def apply(
        self, events: Sequence[Any], arrivals_ms: Sequence[int], *, poison: int = 0,
        sources: Sequence[RecordSource] | None = None,
    ) -> FoldOutcome: ...


def batch_folder(settings: CollectorSettings, redis: AnyRedis, keys: RedisKeys) -> BatchFolder[Any]:
    """The fold of ``redis`` under ``keys``: one atomic call per batch, or the steps on a cluster, whose slots no
    one call can span."""
    if isinstance(redis, RedisCluster):
        return SteppedFolder(redis, keys, fold_limits(settings))
    return statistics_folder(settings, redis, keys)


class PartitionView(Protocol):
    """What the lag needs of a consumer (aiokafka's ``AIOKafkaConsumer`` has it)."""

    def assignment(self) -> set[TopicPartition]: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...


class DeadLetterSink(Protocol):
    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Return only once every letter is durable; raise otherwise."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A fetched batch, decoded, with its fold call built but not sent."""

    batch: DecodedBatch
    records: Sequence[EventRecord]
    batches: Mapping[TopicPartition, Sequence[Any]]
    call: Any


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A batch whose fold call was written (``pending``; None if writing it failed) and not yet answered."""

    prepared: _Prepared
    pending: PendingOutcome | None


class Aggregator:
    def __init__(
        self, settings: CollectorSettings, redis: AnyRedis, *, dead_letters: DeadLetterSink | None = None,
        poll_timeout_ms: int = 250, retry_seconds: float = 1.0,
    ) -> None:
        """Without ``dead_letters``, :meth:`run_until_stopped` writes them with its own :class:`DeadLetterProducer`."""
        self._settings = settings
        self._folder = batch_folder(settings, redis, settings.redis_keys)
        self._dead_letters = dead_letters
        self._poll_timeout_ms = poll_timeout_ms
        self._retry_seconds = retry_seconds
        self._stopping = asyncio.Event()
        self._lag_partitions: set[int] = set()

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit it and return; safe from a signal handler."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def process_batch(self, records: Sequence[EventRecord]) -> FoldOutcome:
        """Set aside the undecodable ``records`` on the dead-letter topic, then fold the others."""
        batch = decode_records(records)
        await self._set_aside(batch.dead_letters)
        return await self._fold(batch)

    async def run_until_stopped(self) -> None:
        own_producer: DeadLetterProducer | None = None
        if self._dead_letters is None:
            own_producer = await self._started(lambda: DeadLetterProducer(self._settings), "dead-letter producer")
            if own_producer is None:
                return
            self._dead_letters = own_producer
        try:
            await self._consume()
        finally:
            if own_producer is not None:
                self._dead_letters = None
                await own_producer.stop()

    async def _consume(self) -> None:
        consumer = await self._started(lambda: events_consumer(self._settings), "events consumer")
        if consumer is None:
            return
        log.info("aggregator consuming", topic=self._settings.events_topic, group=self._settings.consumer_group)
        # One fold call is in flight at a time: the next batch is fetched, decoded and its call built while Redis
        # runs it, and that call goes out as soon as the answer is in, before the answered batch's offsets are
        # committed, so that Redis does not wait on Python or Kafka.
        in_flight: _InFlight | None = None
        try:
            while not self.stopping:
                try:
                    batches = await consumer.getmany(
                        timeout_ms=0 if in_flight else self._poll_timeout_ms,
                        max_records=self._settings.consumer_batch_max,
                    )
                except KafkaError as error:
                    log.warning("fetch failed; retrying", error=repr(error))
                    batches = {}
                    if in_flight is None:
                        await self._pause()
                records = [record for partition_records in batches.values() for record in partition_records]
                upcoming = self._prepare(records, batches) if records else None
                answered = None
                if in_flight is not None:
                    answered, in_flight = in_flight, None  # settled once, even if settling raises
                    if not await self._settle(answered):
                        break
                if upcoming is not None:
                    in_flight = await self._start(upcoming)
                if answered is not None:
                    await self._commit(consumer, answered.prepared.batches)
                if upcoming is not None and in_flight is None:
                    break
        finally:
            if in_flight is not None and await self._settle(in_flight):
                await self._commit(consumer, in_flight.prepared.batches)
            await consumer.stop()
            self._forget_lag()
            log.info("aggregator stopped")

    def _prepare(self, records: Sequence[EventRecord], batches: Mapping[TopicPartition, Sequence[Any]]) -> _Prepared:
        batch = decode_records(records)
        call = self._folder.call(
            batch.events, batch.arrivals_ms, poison=len(batch.dead_letters), sources=batch.sources
        )
        return _Prepared(batch, records, batches, call)

    async def _start(self, prepared: _Prepared) -> _InFlight | None:
        """Set the batch's dead letters aside, then write its fold call; None if asked to stop first (the batch is
        then redelivered to the next run)."""
        letters, records = prepared.batch.dead_letters, prepared.records
        if letters and not await self._retrying(lambda: self._set_aside(letters), records):
            return None
        try:
            pending = await self._folder.send(prepared.call)
        except _RETRIED as error:
            log.warning("the fold call could not be sent; retrying", error=repr(error), records=len(records))
            pending = None
        return _InFlight(prepared, pending)

    async def _settle(self, flight: _InFlight) -> bool:
        """Read the fold's answer, folding the batch again, with retries, if it failed (a fold is idempotent); False
        if asked to stop before the batch was applied. The caller then commits the batch's offsets."""
        outcome = None
        if flight.pending is not None:
            try:
                outcome = await flight.pending.outcome()
            except _RETRIED as error:
                log.warning("a dependency is unavailable; retrying the batch", error=repr(error))
        if outcome is not None:
            self._count(outcome)
            return True
        return await self._retrying(lambda: self._fold(flight.prepared.batch), flight.prepared.records)

    async def _started(self, create: Callable[[], C], client_name: str) -> C | None:
        """A started client, retrying while Kafka is unreachable; None if asked to stop first."""
        while not self.stopping:
            client = create()
            try:
                await client.start()
                return client
            except KafkaError as error:
                log.warning("kafka unavailable; retrying", client=client_name, error=repr(error))
                await client.stop()
                await self._pause()
        return None

    async def _retrying(self, step: Callable[[], Awaitable[object]], records: Sequence[EventRecord]) -> bool:
        while True:
            try:
                await step()
            except _RETRIED as error:
                log.warning("a dependency is unavailable; retrying the batch", error=repr(error), records=len(records))
                if self.stopping:
                    return False
                await self._pause()
                continue
            return True

    async def _set_aside(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        if self._dead_letters is None:
            raise DependencyUnavailable("kafka: no dead-letter producer is running")
        await self._dead_letters.send(letters)
        CONSUMER_EVENTS.labels(outcome="dead_letter").inc(len(letters))
        for letter in letters:
            log.warning(
                "undecodable record set aside on the dead-letter topic", topic=letter.source_topic,
                partition=letter.source_partition, offset=letter.source_offset, reason=letter.reason,
            )

    async def _fold(self, batch: DecodedBatch) -> FoldOutcome:
        outcome = await self._folder.apply(
            batch.events, batch.arrivals_ms, poison=len(batch.dead_letters), sources=batch.sources
        )
        self._count(outcome)
        return outcome

    def _count(self, outcome: FoldOutcome) -> None:
        CONSUMER_EVENTS.labels(outcome="applied").inc(outcome.applied)
        CONSUMER_EVENTS.labels(outcome="duplicate").inc(outcome.duplicates)
        CONSUMER_EVENTS.labels(outcome="orphan").inc(outcome.orphan_exposures)
        log.debug("batch applied", outcome=outcome)

    async def _commit(self, consumer: AIOKafkaConsumer, batches: Mapping[TopicPartition, Sequence[Any]]) -> None:
        offsets = {partition: records[-1].offset + 1 for partition, records in batches.items() if records}
        try:
            await consumer.commit(offsets)
        except KafkaError as error:
            # Typically a rebalance took the partitions away; their next owner re-reads and deduplicates.
            log.warning("offset commit failed; the batch will be redelivered", error=repr(error))
            return
        self.report_lag(consumer, offsets)

    def report_lag(self, consumer: PartitionView, committed: Mapping[TopicPartition, int]) -> None:
        """Set the lag of each partition just committed: the end offset the last fetch saw minus the committed
        offset; drop the lag of partitions no longer assigned to us."""
        assigned = consumer.assignment()
        for partition, offset in committed.items():
            end = consumer.highwater(partition) if partition in assigned else None
            if end is not None:
                CONSUMER_LAG.labels(partition=str(partition.partition)).set(max(end - offset, 0))
                self._lag_partitions.add(partition.partition)
        for gone in self._lag_partitions - {partition.partition for partition in assigned}:
            CONSUMER_LAG.remove(str(gone))
            self._lag_partitions.discard(gone)

    def _forget_lag(self) -> None:
        for partition in self._lag_partitions:
            CONSUMER_LAG.remove(str(partition))
        self._lag_partitions.clear()

    async def _pause(self) -> None:
        """Wait before retrying, but return at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=self._retry_seconds)
