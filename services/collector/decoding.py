"""Decoding a batch of Kafka records into the events to fold and the dead letters to set aside.

A record that is not a valid event is never retried (it would fail the same way forever) nor dropped: it goes to
the dead-letter topic unchanged (same key, same value) with headers saying why and where it came from.

Each event also gets its arrival time (epoch ms), which bounds how late an exposure may come for events that arrived
before it: the collector's ``received_at`` stamp, else (events other services publish) the Kafka record's timestamp,
else (a record without one) the time of decoding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from pydantic import ValidationError

from splitstream.events import Exposure, TrackEvent, decode, decode_all

REASON_HEADER: Final = "dead-letter-reason"
SOURCE_TOPIC_HEADER: Final = "source-topic"
SOURCE_PARTITION_HEADER: Final = "source-partition"
SOURCE_OFFSET_HEADER: Final = "source-offset"
MAX_REASON_CHARS: Final = 1000


class EventRecord(Protocol):
    """What the aggregator reads of a Kafka record (aiokafka's ``ConsumerRecord`` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int:
        """Epoch milliseconds; negative when the record has none."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (REASON_HEADER, self.reason.encode()),
            (SOURCE_TOPIC_HEADER, self.source_topic.encode()),
            (SOURCE_PARTITION_HEADER, str(self.source_partition).encode()),
            (SOURCE_OFFSET_HEADER, str(self.source_offset).encode()),
        ]


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    events: list[Exposure | TrackEvent]
    dead_letters: list[DeadLetter]
    arrivals_ms: list[int]
    """The arrival time of each of ``events``, at the same index."""
    sources: Sequence[EventRecord]
    """The record of each of ``events``, at the same index."""


def arrival_ms(event: Exposure | TrackEvent, record_timestamp_ms: int, now_ms: int) -> int:
    if event.received_at is not None:
        return int(event.received_at.timestamp() * 1000)
    return record_timestamp_ms if record_timestamp_ms >= 0 else now_ms


def _reason(error: ValidationError) -> str:
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"])
        parts.append(f"{where}: {detail['msg']}" if where else detail["msg"])
    return "; ".join(parts)


def decode_records(records: Sequence[EventRecord]) -> DecodedBatch:
    now_ms = time.time_ns() // 1_000_000
    payloads = [record.value for record in records if record.value is not None]
    # The common case, every record a valid event, in one call; record by record otherwise, to name the bad ones.
    decoded = decode_all(payloads) if len(payloads) == len(records) else None
    if decoded is not None:
        arrivals = [arrival_ms(event, record.timestamp, now_ms) for event, record in zip(decoded, records, strict=True)]
        return DecodedBatch(decoded, [], arrivals, records)
    events: list[Exposure | TrackEvent] = []
    dead_letters: list[DeadLetter] = []
    arrivals = []
    sources = []
    for record in records:
        if record.value is None:
            reason = "record has no value"
        else:
            try:
                event = decode(record.value)
            except ValidationError as error:
                reason = _reason(error)
            except ValueError as error:
                reason = str(error) or type(error).__name__
            else:
                events.append(event)
                arrivals.append(arrival_ms(event, record.timestamp, now_ms))
                sources.append(record)
                continue
        dead_letters.append(DeadLetter(
            key=record.key, value=record.value, reason=reason[:MAX_REASON_CHARS], source_topic=record.topic,
            source_partition=record.partition, source_offset=record.offset,
        ))
    return DecodedBatch(events, dead_letters, arrivals, sources)
