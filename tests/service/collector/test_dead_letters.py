"""Undecodable records go to the dead-letter topic unchanged, acknowledged before their offsets are committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from services.collector.adapters.fold import read_stats
from services.collector.config import CollectorSettings
from services.collector.decoding import DeadLetter
from splitstream.errors import DependencyUnavailable
from tests.service.collector.conftest import RunAggregator, metric_sample, read_topic, wait_for_stats


async def produce_raw(
    settings: CollectorSettings, records: Sequence[tuple[bytes, bytes | None]]
) -> list[tuple[int, int]]:
    """Write ``(key, value)`` records as they are; the (partition, offset) of each."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        written = [await producer.send_and_wait(settings.events_topic, value, key=key) for key, value in records]
    finally:
        await producer.stop()
    return [(metadata.partition, metadata.offset) for metadata in written]


async def committed_offsets(settings: CollectorSettings) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.consumer_group)
    finally:
        await admin.close()
    return {partition: meta.offset for partition, meta in offsets.items() if meta.offset >= 0}


async def test_undecodable_records_end_up_on_the_dead_letter_topic_with_their_reason_and_origin(
    settings: CollectorSettings, redis: Redis, run_aggregator: RunAggregator
) -> None:
    raw: list[tuple[bytes, bytes | None]] = [
        (b"ann", b"not json"), (b"bob", b'{"type": "event", "event_id": "x"}'), (b"cat", None)
    ]
    origins = dict(zip((key for key, _ in raw), await produce_raw(settings, raw), strict=True))
    dead_letters_before = metric_sample("splitstream_consumer_events_total", outcome="dead_letter")

    await run_aggregator(settings)
    await wait_for_stats(redis, settings, lambda stats: stats["poison"] == 3)
    letters = {record.key: record for record in await read_topic(settings, 3, topic=settings.dead_letter_topic)}

    assert {key: record.value for key, record in letters.items()} == dict(raw)
    headers = {key: dict(record.headers) for key, record in letters.items()}
    for key, (partition, offset) in origins.items():
        assert headers[key]["source-topic"] == settings.events_topic.encode()
        assert (headers[key]["source-partition"], headers[key]["source-offset"]) == (
            str(partition).encode(), str(offset).encode()
        )
    assert headers[b"ann"]["dead-letter-reason"].startswith(b"Invalid JSON")
    assert b"event.user_id: Field required" in headers[b"bob"]["dead-letter-reason"]
    assert headers[b"cat"]["dead-letter-reason"] == b"record has no value"
    assert metric_sample("splitstream_consumer_events_total", outcome="dead_letter") - dead_letters_before == 3


class UnavailableUntilOpened:
    """A dead-letter sink that fails like an unreachable broker until ``opened`` is set."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.attempts = 0
        self.sent: list[DeadLetter] = []

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.attempts += 1
        if not self.opened.is_set():
            raise DependencyUnavailable("kafka: dead-letter topic unreachable")
        self.sent.extend(letters)


async def test_offsets_are_not_committed_until_the_dead_letter_is_acknowledged(
    settings: CollectorSettings, redis: Redis, run_aggregator: RunAggregator
) -> None:
    [(partition, offset)] = await produce_raw(settings, [(b"ann", b"\x00garbage")])
    sink = UnavailableUntilOpened()

    await run_aggregator(settings, dead_letters=sink)
    deadline = time.monotonic() + 20
    while sink.attempts < 3:  # retried, at retry_seconds=0.2
        assert time.monotonic() < deadline, "the consumer never tried to set the record aside"
        await asyncio.sleep(0.05)

    assert await committed_offsets(settings) == {}
    assert (await read_stats(redis, settings.redis_keys))["poison"] == 0

    sink.opened.set()
    await wait_for_stats(redis, settings, lambda stats: stats["poison"] == 1)
    expected = {TopicPartition(settings.events_topic, partition): offset + 1}
    deadline = time.monotonic() + 20
    while (committed := await committed_offsets(settings)) != expected:
        assert time.monotonic() < deadline, f"committed {committed}, expected {expected}"
        await asyncio.sleep(0.05)

    assert [(letter.key, letter.value, letter.source_offset) for letter in sink.sent] == [
        (b"ann", b"\x00garbage", offset)
    ]
