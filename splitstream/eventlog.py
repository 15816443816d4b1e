"""The writer side of the events topic: an idempotent producer with acks=all.

``publish`` returns only once the broker has acknowledged every record, so a caller may promise durability.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from splitstream.errors import DependencyUnavailable
from splitstream.events import Exposure, TrackEvent, encode, partition_key
from splitstream.partitioning import KeyPartitioner, partition_of

log = structlog.get_logger(__name__)

BATCHED_FROM: Final = 32
"""From this many events on, ``publish`` hands aiokafka whole record batches, one or more per partition
(``send_batch``): sent one by one, each record costs a future and an append to the producer's queue. Fewer go one by
one, so that small concurrent calls (assignment's exposures) share the producer's batches."""


async def send_record_batches(
    producer: AIOKafkaProducer, topic: str, records: Sequence[tuple[bytes, bytes]]
) -> list[asyncio.Future[Any]]:
    """Queue keyed ``records`` (key, value) as whole record batches, one or more per partition (the key's, by Kafka's
    default rule), each partition's in the given order; the futures of their acknowledgements."""
    partitions = sorted(await producer.partitions_for(topic))
    by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
    for key, value in records:
        by_partition.setdefault(partitions[partition_of(key, len(partitions))], []).append((key, value))
    pending = []
    for partition, pairs in by_partition.items():
        batch = producer.create_batch()
        for key, value in pairs:
            if batch.append(timestamp=None, key=key, value=value) is None:  # full: send it, start another
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value)  # a batch always takes its first record
        batch.close()
        pending.append(await producer.send_batch(batch, topic, partition=partition))
    return pending


class EventLog:
    def __init__(self, bootstrap_servers: str, topic: str, *, request_timeout_ms: int = 15_000) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            request_timeout_ms=request_timeout_ms,
            client_id="splitstream",
            partitioner=KeyPartitioner(),
        )
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        # Also after a failed start: aiokafka warns about an unclosed producer otherwise.
        await self._producer.stop()
        self._started = False

    async def publish(self, events: Sequence[Exposure | TrackEvent]) -> None:
        if not self._started:
            raise DependencyUnavailable("kafka: producer not connected")
        try:
            if len(events) < BATCHED_FROM:
                pending = [
                    await self._producer.send(self.topic, encode(event), key=partition_key(event))
                    for event in events
                ]
            else:
                keyed = [(partition_key(event), encode(event)) for event in events]
                pending = await send_record_batches(self._producer, self.topic, keyed)
            await asyncio.gather(*pending)
        except KafkaError as error:
            raise DependencyUnavailable(f"kafka: events not acknowledged ({error!r})") from error

    async def publish_record(self, topic: str, key: bytes, value: bytes) -> None:
        """One record to another topic through the same producer, acknowledged before this returns."""
        if not self._started:
            raise DependencyUnavailable("kafka: producer not connected")
        try:
            await self._producer.send_and_wait(topic, value, key=key)
        except KafkaError as error:
            raise DependencyUnavailable(f"kafka: record not acknowledged by {topic} ({error!r})") from error

    async def check(self) -> None:
        """Raise unless the broker answers a metadata request for our topic."""
        if not self._started:
            raise DependencyUnavailable("kafka: producer not connected")
        try:
            partitions = await asyncio.wait_for(self._producer.partitions_for(self.topic), timeout=5)
        except (KafkaError, TimeoutError) as error:
            raise DependencyUnavailable(f"kafka: {error!r}") from error
        if not partitions:
            raise DependencyUnavailable(f"kafka: topic {self.topic} has no partitions")


DEAD_LETTER_SUFFIX = ".dead-letter"


def dead_letter_topic_for(events_topic: str) -> str:
    """The default topic where the consumer sets aside the records of ``events_topic`` it cannot decode."""
    return f"{events_topic}{DEAD_LETTER_SUFFIX}"


EVENTS_TOPIC_CONFIGS: Mapping[str, str] = {"retention.ms": "-1"}
"""The events topic keeps every record: it is the source the statistics are derived from, and ``splitstream
rebuild`` replays it from offset 0 (it refuses once retention has deleted any record). The broker's default of 7
days would lose that. Disk grows with the events; topics created before this setting keep their retention until
altered (``kafka-configs.sh --alter --entity-type topics --entity-name <topic> --add-config retention.ms=-1``)."""


async def ensure_topic(
    bootstrap_servers: str, topic: str, partitions: int, configs: Mapping[str, str] | None = None
) -> bool:
    """Create the topic if it does not exist; True if this call created it."""
    created = await ensure_topics(bootstrap_servers, [topic], partitions, configs)
    return created[topic]


async def ensure_topics(
    bootstrap_servers: str, topics: Sequence[str], partitions: int, configs: Mapping[str, str] | None = None
) -> dict[str, bool]:
    """Create those of ``topics`` that do not exist, with one admin connection; per topic, whether it was created.

    ``configs`` (e.g. ``{"cleanup.policy": "compact"}``) apply to the topics this call creates."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="splitstream-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        created: dict[str, bool] = {}
        for topic in topics:
            if topic in existing or topic in created:
                created.setdefault(topic, False)
                continue
            try:
                new_topic = NewTopic(
                    topic, num_partitions=partitions, replication_factor=1, topic_configs=dict(configs or {})
                )
                await admin.create_topics([new_topic])
            except TopicAlreadyExistsError:
                created[topic] = False
            else:
                created[topic] = True
        return created
    finally:
        await admin.close()


class Connectable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=Connectable)


async def _try_start(client: Connectable) -> bool:
    try:
        await client.start()
    except (KafkaError, OSError) as error:
        log.warning("kafka client could not connect", error=repr(error))
        return False
    return True


async def _retry_until_started(client: Connectable, retry_seconds: float) -> None:
    while True:
        await asyncio.sleep(retry_seconds)
        if await _try_start(client):
            log.info("kafka client connected")
            return


@asynccontextmanager
async def connected(client: C, retry_seconds: float = 2.0) -> AsyncIterator[C]:
    """Try once before serving; if Kafka is down, keep trying in the background until it answers or we exit.

    A service thus starts without Kafka: meanwhile :meth:`EventLog.publish` and :meth:`EventLog.check` raise
    ``DependencyUnavailable``, so /readyz names Kafka and a write that needs it answers 503 instead of losing data.
    """
    retrying: asyncio.Task[None] | None = None
    if not await _try_start(client):
        retrying = asyncio.create_task(_retry_until_started(client, retry_seconds), name="kafka-connect")
    try:
        yield client
    finally:
        if retrying is not None:
            retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrying
        await client.stop()
