"""Ingest: check a batch event by event, publish the valid ones, answer only once Kafka has acknowledged them.

Each accepted event is stamped with ``received_at``, the collector's clock when the batch arrived; a value the client
sent in that field is overwritten, so the field always means the server's receive time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from services.collector.metrics import INGEST_EVENTS, KAFKA_PUBLISH_ERRORS
from splitstream.errors import DependencyUnavailable, FieldError, InvalidRequest, MalformedJson, PayloadTooLarge
from splitstream.events import Exposure, TrackEvent, event_adapter, events_adapter

Event = Exposure | TrackEvent


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None:
        """Return only once every event is durable; raise ``DependencyUnavailable`` otherwise."""


class ExperimentCatalog(Protocol):
    async def variants_of(self, experiment: str) -> frozenset[str] | None:
        """The experiment's variant keys; None when there is no such experiment."""


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    index: int
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    valid: list[Event]
    rejected: list[RejectedEvent]
    indexes: list[int]
    """The position in the request of each valid event."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    rejected: list[RejectedEvent]


def parse_batch(body: bytes, max_events: int) -> list[Any]:
    """The raw items of ``{"events": [...]}``; errors that concern the whole batch reject it."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedJson("the body is not valid JSON", [FieldError("body", str(error))]) from error
    if not isinstance(document, dict):
        raise InvalidRequest("the body must be a JSON object", [FieldError("body", 'expected {"events": [...]}')])
    unknown = sorted(set(document) - {"events"})
    if unknown:
        raise InvalidRequest("unknown fields in the body", [FieldError(name, "unknown field") for name in unknown])
    if "events" not in document:
        raise InvalidRequest("no events", [FieldError("events", "field required")])
    items = document["events"]
    if not isinstance(items, list):
        raise InvalidRequest("events must be a list", [FieldError("events", "must be a list of events")])
    if not items:
        raise InvalidRequest("no events", [FieldError("events", "must hold at least one event")])
    if len(items) > max_events:
        raise PayloadTooLarge(
            "too many events in one batch",
            [FieldError("events", f"holds {len(items)} events; at most {max_events} per request")],
        )
    return items


def _event_field(error_type: str, location: tuple[int | str, ...]) -> str:
    """The event's own field at fault: pydantic puts the discriminator's value first in a tagged union's paths."""
    if error_type.startswith("union_tag"):
        return "type"
    return ".".join(str(part) for part in location[1:])


def check_events(
    items: list[Any], now: datetime, *, max_future_skew: timedelta, max_past_skew: timedelta
) -> CheckedBatch:
    """Validate each item on its own, so that one bad event does not cost the batch its good ones.

    Valid events carry ``received_at=now`` (written into ``items``); timestamps outside
    ``[now - max_past_skew, now + max_future_skew]`` are refused.
    """
    for item in items:
        if isinstance(item, dict):
            item["received_at"] = now  # in place: the items are this request's own, fresh from its body
    try:
        # The common case, a batch without a schema error, in one call.
        events = events_adapter.validate_python(items)
    except ValidationError:
        return _check_each(items, now, max_future_skew=max_future_skew, max_past_skew=max_past_skew)
    valid: list[Event] = []
    indexes: list[int] = []
    rejected: list[RejectedEvent] = []
    for index, event in enumerate(events):
        refusal = _timestamp_refusal(event, now, max_future_skew, max_past_skew)
        if refusal is None:
            valid.append(event)
            indexes.append(index)
        else:
            rejected.append(RejectedEvent(index, f"events.{index}.timestamp", refusal))
    return CheckedBatch(valid, rejected, indexes)


def _check_each(
    stamped: list[Any], now: datetime, *, max_future_skew: timedelta, max_past_skew: timedelta
) -> CheckedBatch:
    """``check_events`` item by item: the errors of every item, and the valid ones kept."""
    valid: list[Event] = []
    indexes: list[int] = []
    rejected: list[RejectedEvent] = []
    for index, item in enumerate(stamped):
        prefix = f"events.{index}"
        try:
            event = event_adapter.validate_python(item)
        except ValidationError as error:
            for detail in error.errors():
                field = _event_field(detail["type"], tuple(detail["loc"]))
                rejected.append(RejectedEvent(index, f"{prefix}.{field}" if field else prefix, detail["msg"]))
            continue
        refusal = _timestamp_refusal(event, now, max_future_skew, max_past_skew)
        if refusal is not None:
            rejected.append(RejectedEvent(index, f"{prefix}.timestamp", refusal))
            continue
        valid.append(event)
        indexes.append(index)
    return CheckedBatch(valid, rejected, indexes)


def _timestamp_refusal(
    event: Event, now: datetime, max_future_skew: timedelta, max_past_skew: timedelta
) -> str | None:
    if event.timestamp > now + max_future_skew:
        return f"timestamp is more than {max_future_skew.total_seconds():.0f} seconds in the future"
    if event.timestamp < now - max_past_skew:
        return f"timestamp is more than {max_past_skew.total_seconds():.0f} seconds in the past"
    return None


async def check_exposures(batch: CheckedBatch, catalog: ExperimentCatalog) -> CheckedBatch:
    """Reject exposures to experiments or variants that do not exist: they could never be counted."""
    valid: list[Event] = []
    indexes: list[int] = []
    rejected = list(batch.rejected)
    for index, event in zip(batch.indexes, batch.valid, strict=True):
        if isinstance(event, Exposure):
            variants = await catalog.variants_of(event.experiment)
            if variants is None:
                rejected.append(RejectedEvent(index, f"events.{index}.experiment", "no experiment with this key"))
                continue
            if event.variant not in variants:
                reason = f"not a variant of {event.experiment!r}; expected one of {sorted(variants)}"
                rejected.append(RejectedEvent(index, f"events.{index}.variant", reason))
                continue
        valid.append(event)
        indexes.append(index)
    rejected.sort(key=lambda r: r.index)
    return CheckedBatch(valid, rejected, indexes)


class IngestService:
    def __init__(
        self, publisher: EventPublisher, catalog: ExperimentCatalog, *, max_batch_events: int,
        max_future_skew: timedelta, max_past_skew: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._publisher = publisher
        self._catalog = catalog
        self._max_batch_events = max_batch_events
        self._max_future_skew = max_future_skew
        self._max_past_skew = max_past_skew
        self._clock = clock

    async def ingest(self, body: bytes) -> IngestResult:
        """Publish the batch's valid events; returning means Kafka acknowledged all of them."""
        items = parse_batch(body, self._max_batch_events)
        batch = check_events(
            items, self._clock(), max_future_skew=self._max_future_skew, max_past_skew=self._max_past_skew
        )
        batch = await check_exposures(batch, self._catalog)
        INGEST_EVENTS.labels(outcome="rejected").inc(len({r.index for r in batch.rejected}))
        if not batch.valid:
            raise InvalidRequest(
                "no event in the batch is valid", [FieldError(r.field, r.reason) for r in batch.rejected]
            )
        try:
            await self._publisher.publish(batch.valid)
        except DependencyUnavailable:
            KAFKA_PUBLISH_ERRORS.inc()
            raise
        INGEST_EVENTS.labels(outcome="accepted").inc(len(batch.valid))
        return IngestResult(accepted=len(batch.valid), rejected=batch.rejected)
