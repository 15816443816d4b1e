"""End to end on the running test stack (uvicorn processes, the consumer process, Kafka, Redis), over HTTP only.

`make test` starts the stack and exports the services' URLs; these tests fail, never skip, when it is not there.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.conftest import auth

ASSIGNMENT = os.environ.get("SPLITSTREAM_TEST_ASSIGNMENT_URL", "http://127.0.0.1:28001")
COLLECTOR = os.environ.get("SPLITSTREAM_TEST_COLLECTOR_URL", "http://127.0.0.1:28002")
ANALYZER = os.environ.get("SPLITSTREAM_TEST_ANALYZER_URL", "http://127.0.0.1:28003")
TOPIC = os.environ.get("SPLITSTREAM_TEST_EVENTS_TOPIC", "splitstream.events")
CONSUMER_GROUP = "splitstream-aggregator"

pytestmark = pytest.mark.integration


async def _eventually(probe: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"condition not met within {within}s")


async def _consumer_caught_up(bootstrap: str) -> bool:
    """True once the aggregation consumer has committed every record on the topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(CONSUMER_GROUP)
        return all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def _results(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    answer = await client.get(f"{ANALYZER}/v1/experiments/{key}/results", headers=auth("read"))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _metric(results: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    metric = next(m for m in results["metrics"] if m["key"] == key)
    return {v["key"]: v for v in metric["variants"]}


async def test_every_event_is_counted_exactly_once(unique: str, kafka_bootstrap: str) -> None:
    key = f"e2e-{unique}"
    users = [f"user-{unique}-{i}" for i in range(400)]
    rng = random.Random(11)
    async with httpx.AsyncClient(timeout=30) as client:
        spec = {
            "key": key,
            "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
            "metrics": [
                {"key": "purchased", "type": "binomial", "event": "purchase"},
                {"key": "revenue", "type": "mean", "event": "purchase"},
            ],
        }
        created = await client.post(f"{ASSIGNMENT}/v1/experiments", json=spec, headers=auth("admin"))
        assert created.status_code == 201, created.text
        started = await client.post(f"{ASSIGNMENT}/v1/experiments/{key}/start", headers=auth("admin"))
        assert started.status_code == 200, started.text

        variants: dict[str, str] = {}
        for user in users:
            answer = await client.get(
                f"{ASSIGNMENT}/v1/assign", params={"experiment": key, "user_id": user}, headers=auth("ingest")
            )
            assert answer.status_code == 200, answer.text
            variants[user] = answer.json()["variant"]

        # Every third user buys once or twice; the expected aggregates are computed per user, as the contract says.
        events: list[dict[str, Any]] = []
        expected: dict[str, dict[str, float]] = {v: {"users": 0, "buyers": 0, "sum": 0.0}
                                                 for v in ("control", "treatment")}
        for index, user in enumerate(users):
            totals = expected[variants[user]]
            totals["users"] += 1
            if index % 3:
                continue
            amounts = [round(rng.uniform(5, 50), 2) for _ in range(1 + index % 2)]
            for order, amount in enumerate(amounts):
                events.append({"type": "event", "event_id": f"{key}-{user}-{order}", "user_id": user,
                               "name": "purchase", "value": amount, "timestamp": datetime.now(UTC).isoformat()})
            totals["buyers"] += 1
            totals["sum"] += sum(amounts)

        async def send_all() -> None:
            for start in range(0, len(events), 100):
                batch = events[start:start + 100]
                answer = await client.post(f"{COLLECTOR}/v1/events", json={"events": batch}, headers=auth("ingest"))
                assert answer.status_code == 202, answer.text
                assert answer.json()["accepted"] == len(batch)

        def matches(results: dict[str, Any]) -> bool:
            users_seen = {v["key"]: v["users"] for v in results["variants"]}
            purchased, revenue = _metric(results, "purchased"), _metric(results, "revenue")
            return all(
                users_seen[v] == expected[v]["users"]
                and purchased[v]["sum"] == expected[v]["buyers"]
                and revenue[v]["sum"] == pytest.approx(expected[v]["sum"], rel=1e-9)
                for v in expected
            )

        await send_all()

        async def counted() -> bool:
            return matches(await _results(client, key))

        await _eventually(counted)
        await _eventually(lambda: _consumer_caught_up(kafka_bootstrap))

        # The same event ids again, and the same users assigned again: Kafka takes them, nothing changes.
        await send_all()
        for user in users[:50]:
            again = await client.get(
                f"{ASSIGNMENT}/v1/assign", params={"experiment": key, "user_id": user}, headers=auth("ingest")
            )
            assert again.json()["variant"] == variants[user]
        await _eventually(lambda: _consumer_caught_up(kafka_bootstrap))
        results = await _results(client, key)
        assert matches(results), results

        revenue = next(m for m in results["metrics"] if m["key"] == "revenue")
        comparison = revenue["comparisons"][0]
        assert comparison["variant"] == "treatment" and comparison["baseline"] == "control"
        assert comparison["ci_lower"] <= comparison["effect"] <= comparison["ci_upper"]
        assert 0.0 <= comparison["p_value"] <= 1.0


async def test_each_service_reports_ready() -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for base in (ASSIGNMENT, COLLECTOR, ANALYZER):
            answer = await client.get(f"{base}/readyz")
            assert answer.status_code == 200, f"{base}: {answer.text}"
            assert answer.json()["status"] == "ready"
