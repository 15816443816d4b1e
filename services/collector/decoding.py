"""Decoding a batch of Kafka records into the events to fold and the dead letters to set aside.

A record that is not a valid event is never retried (it would fail the same way forever) nor dropped: it goes to
the dead-letter topic unchanged (same key, same value) with headers saying why and where it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from pydantic import ValidationError

from splitstream.events import Exposure, TrackEvent, decode

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


def _reason(error: ValidationError) -> str:
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"])
        parts.append(f"{where}: {detail['msg']}" if where else detail["msg"])
    return "; ".join(parts)


def decode_records(records: Sequence[EventRecord]) -> DecodedBatch:
    events: list[Exposure | TrackEvent] = []
    dead_letters: list[DeadLetter] = []
    for record in records:
        if record.value is None:
            reason = "record has no value"
        else:
            try:
                events.append(decode(record.value))
                continue
            except ValidationError as error:
                reason = _reason(error)
            except ValueError as error:
                reason = str(error) or type(error).__name__
        dead_letters.append(DeadLetter(
            key=record.key, value=record.value, reason=reason[:MAX_REASON_CHARS], source_topic=record.topic,
            source_partition=record.partition, source_offset=record.offset,
        ))
    return DecodedBatch(events, dead_letters)
