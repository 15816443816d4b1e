"""Batch parsing and per-event validation of the ingest service, with an in-memory publisher."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from services.collector.service import (
    CheckedBatch,
    Event,
    IngestService,
    RejectedEvent,
    check_events,
    parse_batch,
)
from splitstream.errors import DependencyUnavailable, InvalidRequest, MalformedJson, PayloadTooLarge, SplitStreamError

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(days=1)
PAST = timedelta(days=3)


def purchase(index: int = 0, **changes: Any) -> dict[str, Any]:
    return {"type": "event", "event_id": f"e{index}", "user_id": "u1", "name": "purchase",
            "timestamp": "2024-05-01T11:00:00Z", **changes}


class RecordingPublisher:
    def __init__(self, failure: Exception | None = None) -> None:
        self.published: list[Event] = []
        self._failure = failure

    async def publish(self, events: Sequence[Event]) -> None:
        if self._failure is not None:
            raise self._failure
        self.published.extend(events)


class StaticCatalog:
    def __init__(self, experiments: dict[str, frozenset[str]]) -> None:
        self._experiments = experiments

    async def variants_of(self, experiment: str) -> frozenset[str] | None:
        return self._experiments.get(experiment)


CATALOG = StaticCatalog({"checkout": frozenset({"control", "treatment"})})


def exposure(index: int = 0, **changes: Any) -> dict[str, Any]:
    return {"type": "exposure", "event_id": f"x{index}", "user_id": "u1", "experiment": "checkout",
            "variant": "control", "timestamp": "2024-05-01T11:00:00Z", **changes}


def service(publisher: RecordingPublisher, max_batch_events: int = 10) -> IngestService:
    return IngestService(
        publisher, CATALOG, max_batch_events=max_batch_events, max_future_skew=SKEW, max_past_skew=PAST,
        clock=lambda: NOW,
    )


def check(items: list[Any]) -> CheckedBatch:
    return check_events(items, NOW, max_future_skew=SKEW, max_past_skew=PAST)


async def test_exposures_must_name_an_existing_experiment_and_one_of_its_variants() -> None:
    publisher = RecordingPublisher()
    items = [exposure(0), exposure(1, experiment="nope"), purchase(2), exposure(3, variant="blue"), {"x": 1}]

    result = await service(publisher).ingest(orjson.dumps({"events": items}))

    assert [e.event_id for e in publisher.published] == ["x0", "e2"]
    assert result.accepted == 2
    assert [(r.index, r.field) for r in result.rejected][:2] == [(1, "events.1.experiment"), (3, "events.3.variant")]
    assert "control" in result.rejected[1].reason
    assert {r.index for r in result.rejected} == {1, 3, 4}


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (b"", MalformedJson, "body"),
        (b'{"events": [1,', MalformedJson, "body"),
        (b"NaN", MalformedJson, "body"),
        (b"\xff", MalformedJson, "body"),
        (b'"events"', InvalidRequest, "body"),
        (b"{}", InvalidRequest, "events"),
        (b'{"events": null}', InvalidRequest, "events"),
        (b'{"events": "e1"}', InvalidRequest, "events"),
        (b'{"events": []}', InvalidRequest, "events"),
        (b'{"events": [{}], "batch": 1}', InvalidRequest, "batch"),
        (b'{"events": [1, 2, 3, 4]}', PayloadTooLarge, "events"),
    ],
)
def test_batch_level_problems_refuse_the_whole_body(body: bytes, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as raised:
        parse_batch(body, max_events=3)

    assert type(raised.value) is error
    assert isinstance(raised.value, SplitStreamError)
    assert [f.field for f in raised.value.fields] == [field]


def test_a_batch_at_the_size_limit_is_parsed() -> None:
    assert parse_batch(orjson.dumps({"events": [1, 2, 3]}), max_events=3) == [1, 2, 3]


def test_each_event_is_judged_on_its_own_and_named_by_index_and_field() -> None:
    items = [
        purchase(0),
        purchase(1, type="exposure"),
        {"event_id": "e2"},
        purchase(3, value=float("nan")),
        purchase(4, value="12.5"),
        purchase(5, user_id="bad\nuser"),
        [],
    ]

    checked = check(items)

    assert [e.event_id for e in checked.valid] == ["e0", "e4"]
    assert checked.valid[1].value == 12.5  # type: ignore[union-attr]
    assert [(r.index, r.field) for r in checked.rejected] == [
        (1, "events.1.experiment"),
        (1, "events.1.variant"),
        (1, "events.1.name"),
        (2, "events.2.type"),
        (3, "events.3.value"),
        (5, "events.5.user_id"),
        (6, "events.6"),
    ]


def test_timestamps_beyond_the_allowed_skew_are_rejected_and_naive_ones_read_as_utc() -> None:
    at_limit = purchase(0, timestamp=(NOW + SKEW).isoformat())
    beyond = purchase(1, timestamp=(NOW + SKEW + timedelta(seconds=1)).isoformat())
    naive = purchase(2, timestamp="2024-05-01T13:00:00")

    checked = check([at_limit, beyond, naive])

    assert [e.event_id for e in checked.valid] == ["e0", "e2"]
    assert checked.valid[1].timestamp == datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
    assert checked.rejected == [
        RejectedEvent(1, "events.1.timestamp", "timestamp is more than 86400 seconds in the future")
    ]


def test_timestamps_older_than_the_past_bound_are_rejected_naming_it() -> None:
    at_bound = purchase(0, timestamp=(NOW - PAST).isoformat())
    older = purchase(1, timestamp=(NOW - PAST - timedelta(milliseconds=1)).isoformat())

    checked = check([at_bound, older])

    assert [e.event_id for e in checked.valid] == ["e0"]
    assert checked.rejected == [
        RejectedEvent(1, "events.1.timestamp", "timestamp is more than 259200 seconds in the past")
    ]


def test_a_batch_with_a_schema_error_is_checked_item_by_item_with_the_same_outcome_for_each() -> None:
    beyond = purchase(1, timestamp=(NOW + SKEW + timedelta(seconds=1)).isoformat())
    items = [purchase(0), beyond, purchase(2, value="lots"), purchase(3)]

    mixed = check(items)
    alone = [check([item]) for item in items]

    assert [e.event_id for e in mixed.valid] == ["e0", "e3"] and mixed.indexes == [0, 3]
    assert [(r.index, r.field) for r in mixed.rejected] == [(1, "events.1.timestamp"), (2, "events.2.value")]
    # Whether the batch was checked in one call or item by item, each item fares the same.
    assert [r.reason for r in mixed.rejected] == [alone[1].rejected[0].reason, alone[2].rejected[0].reason]
    assert mixed.valid == [alone[0].valid[0], alone[3].valid[0]]


def test_valid_events_carry_the_receive_time_whatever_the_client_sent_in_its_place() -> None:
    items = [purchase(0), purchase(1, received_at="1999-01-01T00:00:00Z"), purchase(2, received_at=[])]

    checked = check(items)

    assert checked.rejected == []
    assert [event.received_at for event in checked.valid] == [NOW, NOW, NOW]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_accepted_and_rejected_events_and_publish_failures_are_counted() -> None:
    accepted = sample("splitstream_ingest_events_total", outcome="accepted")
    rejected = sample("splitstream_ingest_events_total", outcome="rejected")
    failures = sample("splitstream_kafka_publish_errors_total")
    # Event 1 has two faults but is one rejected event.
    items = [purchase(0), purchase(1, user_id="", name="bad name"), exposure(2, variant="blue"), purchase(3)]

    await service(RecordingPublisher()).ingest(orjson.dumps({"events": items}))
    with pytest.raises(DependencyUnavailable):
        await service(RecordingPublisher(DependencyUnavailable("kafka: down"))).ingest(orjson.dumps({"events": items}))

    assert sample("splitstream_ingest_events_total", outcome="accepted") - accepted == 2
    assert sample("splitstream_ingest_events_total", outcome="rejected") - rejected == 4
    assert sample("splitstream_kafka_publish_errors_total") - failures == 1


async def test_only_valid_events_are_published_and_counted() -> None:
    publisher = RecordingPublisher()
    body = orjson.dumps({"events": [purchase(0), purchase(1, value="abc"), purchase(2)]})

    result = await service(publisher).ingest(body)

    assert result.accepted == 2
    assert [r.field for r in result.rejected] == ["events.1.value"]
    assert [e.event_id for e in publisher.published] == ["e0", "e2"]


async def test_nothing_is_published_when_no_event_is_valid() -> None:
    publisher = RecordingPublisher()
    body = orjson.dumps({"events": [purchase(0, user_id=""), purchase(1, name="has space")]})

    with pytest.raises(InvalidRequest) as raised:
        await service(publisher).ingest(body)

    assert [f.field for f in raised.value.fields] == ["events.0.user_id", "events.1.name"]
    assert publisher.published == []


async def test_a_publisher_failure_is_not_turned_into_an_answer() -> None:
    publisher = RecordingPublisher(failure=DependencyUnavailable("kafka: down"))

    with pytest.raises(DependencyUnavailable):
        await service(publisher).ingest(orjson.dumps({"events": [purchase(0)]}))
