"""``EventLog.publish`` of a large list (whole record batches per partition) on the real broker: every record lands
once, on its key's partition, in each user's order, also when a partition's records fill several batches."""

from __future__ import annotations

from datetime import UTC, datetime

from services.collector.config import CollectorSettings
from splitstream.eventlog import BATCHED_FROM, EventLog
from splitstream.events import TrackEvent, decode
from splitstream.partitioning import partition_of
from tests.service.collector.conftest import read_topic

USERS = 7
EVENTS = 600
PARTITIONS = 4
"""The ``settings`` fixture creates the events topic with 4 partitions."""


async def test_a_large_publish_keeps_each_users_order_on_the_users_partition(
    event_log: EventLog, settings: CollectorSettings
) -> None:
    now = datetime.now(UTC)
    events = [
        TrackEvent(type="event", event_id=f"big-{index:04d}-{'x' * 100}", user_id=f"user-{index % USERS}",
                   name="page_view", value=float(index), timestamp=now)
        for index in range(EVENTS)
    ]
    assert len(events) >= BATCHED_FROM
    # About 250 bytes a record: each partition's share is more than one 16 KiB batch.
    assert sum(len(event.model_dump_json()) for event in events) > PARTITIONS * 2 * 16_384

    await event_log.publish(events)

    records = await read_topic(settings, EVENTS)
    assert len(records) == EVENTS
    seen: dict[str, list[float]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = decode(record.value)
        assert isinstance(event, TrackEvent) and event.value is not None
        assert record.key == event.user_id.encode()
        assert record.partition == partition_of(record.key, PARTITIONS)
        seen.setdefault(event.user_id, []).append(event.value)
    assert {user: values == sorted(values) for user, values in seen.items()} == {
        f"user-{user}": True for user in range(USERS)
    }
    assert sorted(value for values in seen.values() for value in values) == [float(i) for i in range(EVENTS)]
