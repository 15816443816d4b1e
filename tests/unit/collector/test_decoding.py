"""Splitting a batch of records into events to fold and dead letters that keep the record and say why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.collector.decoding import MAX_REASON_CHARS, DeadLetter, arrival_ms, decode_records
from splitstream.events import Exposure, TrackEvent, encode

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    offset: int
    topic: str = "events"
    partition: int = 3
    timestamp: int = 1714564800000


def test_good_records_are_decoded_in_order_and_bad_ones_become_dead_letters() -> None:
    good = [TrackEvent(type="event", event_id=f"e{i}", user_id="ann", name="buy", timestamp=AT) for i in range(2)]
    records = [
        Record(b"ann", encode(good[0]), 10),
        Record(b"bob", b"{not json", 11),
        Record(None, None, 12),
        Record(b"ann", encode(good[1]), 13),
        Record(b"cat", b'{"type": "event", "event_id": "x", "user_id": "cat", "name": "buy"}', 14),
    ]

    batch = decode_records(records)

    assert batch.events == good
    assert [(letter.key, letter.value, letter.source_offset) for letter in batch.dead_letters] == [
        (b"bob", b"{not json", 11), (None, None, 12), (b"cat", records[4].value, 14)
    ]
    assert batch.dead_letters[0].reason.startswith("Invalid JSON")
    assert batch.dead_letters[1].reason == "record has no value"
    assert batch.dead_letters[2].reason == "event.timestamp: Field required"


def test_a_dead_letter_names_its_reason_and_origin_in_headers() -> None:
    letter = DeadLetter(b"k", b"v", "broken", "splitstream.events", 2, 41)

    assert letter.headers == [
        ("dead-letter-reason", b"broken"), ("source-topic", b"splitstream.events"),
        ("source-partition", b"2"), ("source-offset", b"41"),
    ]


def test_a_long_reason_is_cut_to_the_header_budget() -> None:
    fields = ", ".join(f'"extra{i}": {i}' for i in range(200))
    payload = ('{"type": "event", "event_id": "x", "user_id": "u", "name": "buy", "timestamp": 0, ' + fields + "}")

    [letter] = decode_records([Record(b"u", payload.encode(), 0)]).dead_letters

    assert len(letter.reason) == MAX_REASON_CHARS
    assert letter.reason.startswith("event.extra0: Extra inputs are not permitted")


def test_each_event_arrives_at_its_received_at_else_at_its_record_timestamp() -> None:
    stamped = TrackEvent(type="event", event_id="s", user_id="ann", name="buy", timestamp=AT,
                         received_at=datetime(2024, 5, 1, 12, 0, 5, 250000, tzinfo=UTC))
    unstamped = Exposure(type="exposure", event_id="x", user_id="ann", experiment="exp", variant="a", timestamp=AT)
    records = [Record(b"ann", encode(stamped), 0, timestamp=1), Record(None, None, 1),
               Record(b"ann", encode(unstamped), 2, timestamp=1714564801000)]

    batch = decode_records(records)

    assert batch.events == [stamped, unstamped]
    assert batch.arrivals_ms == [1714564805250, 1714564801000]


def test_an_event_without_received_at_nor_record_timestamp_arrives_now() -> None:
    event = TrackEvent(type="event", event_id="e", user_id="ann", name="buy", timestamp=AT)

    assert arrival_ms(event, -1, now_ms=42) == 42
    assert arrival_ms(event, 0, now_ms=42) == 0
    assert arrival_ms(event.model_copy(update={"received_at": AT}), 7, now_ms=42) == 1714564800000
