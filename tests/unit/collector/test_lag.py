"""The consumer's lag gauge: end offset minus committed offset, per partition still assigned."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.collector.aggregator import Aggregator
from services.collector.config import CollectorSettings
from services.collector.metrics import CONSUMER_LAG

TOPIC = "lag-test-events"


class Partitions:
    def __init__(self, highwaters: dict[int, int | None]) -> None:
        self.highwaters = highwaters

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, partition) for partition in self.highwaters}

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.highwaters[partition.partition]


def lag_of(partition: int) -> float | None:
    return REGISTRY.get_sample_value("splitstream_consumer_lag", {"partition": str(partition)})


@pytest.fixture
async def aggregator() -> AsyncIterator[Aggregator]:
    redis = Redis.from_url("redis://127.0.0.1:1/0")  # never called: only the gauge is exercised
    yield Aggregator(CollectorSettings(events_topic=TOPIC), redis)
    CONSUMER_LAG.clear()  # the gauge is process-wide: leave no partition behind for other tests
    await redis.aclose()


def test_each_committed_partition_reports_what_is_left_to_read(aggregator: Aggregator) -> None:
    consumer = Partitions({0: 120, 1: 40, 2: None})

    aggregator.report_lag(consumer, {TopicPartition(TOPIC, 0): 100, TopicPartition(TOPIC, 1): 40,
                                     TopicPartition(TOPIC, 2): 7})

    assert (lag_of(0), lag_of(1), lag_of(2)) == (20.0, 0.0, None)  # no fetch yet on 2: no end offset known


def test_a_partition_taken_away_by_a_rebalance_stops_reporting(aggregator: Aggregator) -> None:
    aggregator.report_lag(Partitions({0: 10, 1: 10}), {TopicPartition(TOPIC, 0): 5, TopicPartition(TOPIC, 1): 9})

    aggregator.report_lag(Partitions({1: 12}), {TopicPartition(TOPIC, 1): 12})

    assert (lag_of(0), lag_of(1)) == (None, 0.0)
