from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from splitstream.events import Exposure, TrackEvent, decode, decode_all, encode, event_adapter


def test_round_trip_through_the_kafka_encoding() -> None:
    event = event_adapter.validate_python(
        {"type": "event", "event_id": "e1", "user_id": "u1", "name": "purchase", "value": 12.5,
         "timestamp": "2026-11-23T10:00:00+01:00"}
    )
    assert isinstance(event, TrackEvent)
    assert event.timestamp == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert decode(encode(event)) == event


def test_naive_timestamps_are_utc() -> None:
    event = event_adapter.validate_python(
        {"type": "exposure", "event_id": "e2", "user_id": "u1", "experiment": "exp", "variant": "control",
         "timestamp": "2026-11-23T10:00:00"}
    )
    assert isinstance(event, Exposure)
    assert event.timestamp_ms == int(datetime(2026, 11, 23, 10, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"value": float("nan")}, "value"),
        ({"value": "abc"}, "value"),
        ({"user_id": ""}, "user_id"),
        ({"event_id": "has space"}, "event_id"),
        ({"name": "bad name!"}, "name"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_fields_are_named(patch: dict[str, object], field: str) -> None:
    raw = {"type": "event", "event_id": "e3", "user_id": "u1", "name": "click", "timestamp": "2026-11-23T10:00:00Z"}
    with pytest.raises(ValidationError) as caught:
        event_adapter.validate_python(raw | patch)
    assert any(field in [str(part) for part in error["loc"]] for error in caught.value.errors())


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(ValidationError):
        event_adapter.validate_python({"type": "pageview", "event_id": "e", "user_id": "u", "timestamp": 0})


def test_received_at_is_optional_kept_through_kafka_and_must_name_its_zone() -> None:
    raw = {"type": "event", "event_id": "e4", "user_id": "u1", "name": "click", "timestamp": "2026-11-23T10:00:00Z"}

    without = event_adapter.validate_python(raw)
    stamped = event_adapter.validate_python(raw | {"received_at": "2026-11-23T11:00:00+01:00"})

    assert without.received_at is None
    assert decode(encode(without)) == without
    assert stamped.received_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert decode(encode(stamped)).received_at == stamped.received_at
    # The collector always writes it in UTC; a naive one comes from elsewhere and is refused, naming the field.
    with pytest.raises(ValidationError) as caught:
        event_adapter.validate_python(raw | {"received_at": "2026-11-23T10:00:01"})
    assert [error["loc"][-1] for error in caught.value.errors()] == ["received_at"]


def _payload(index: int) -> bytes:
    return encode(TrackEvent(type="event", event_id=f"d{index}", user_id=f"u{index}", name="click",
                             timestamp=datetime(2026, 11, 23, 10, tzinfo=UTC)))


def test_payloads_decode_in_one_call_as_one_by_one() -> None:
    payloads = [_payload(index) for index in range(5)]
    assert decode_all(payloads) == [decode(payload) for payload in payloads]
    assert decode_all([]) == []


@pytest.mark.parametrize(
    "payloads",
    [
        [_payload(0), _payload(1) + b"," + _payload(2)],  # two events in one record: one event too many
        [_payload(1) + b"," + _payload(2), b""],  # ... made up for by an empty one: not JSON once joined
        [_payload(0), b"  "],
        [_payload(0), b'{"type": "event"}'],
        [_payload(0), b"[" + _payload(1) + b"]"],
    ],
)
def test_a_batch_with_any_record_that_is_not_exactly_one_event_is_left_to_decode_one_by_one(
    payloads: list[bytes],
) -> None:
    assert decode_all(payloads) is None
