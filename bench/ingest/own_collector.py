"""The ingest measure's own collector: one uvicorn worker of the collector app beside the dev stack, publishing to a
topic of its own that no consumer reads. The rate measured is then the collector's and Kafka's alone, as the
aggregation is measured on its own: with the dev stack's collector, the consumer folded every event while it was
being accepted, on the same cores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient

from bench.ingest.stack import DevStack
from bench.servers import Server, serving
from devstack.config import StackConfig
from splitstream.eventlog import EVENTS_TOPIC_CONFIGS, ensure_topics

COLLECTOR_FACTORY = "services.collector.app:create_app"
COLLECTOR_PORT = 8104


@asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="splitstream-bench")
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@asynccontextmanager
async def own_collector(config: StackConfig, stack: DevStack, run: str) -> AsyncIterator[tuple[Server, str]]:
    """The collector serving, and its topic: made like the dev stack's events topic, deleted at the end."""
    topic = f"{stack.topic}.bench-{run}"
    async with _admin(stack.kafka_bootstrap) as admin:
        [description] = await admin.describe_topics([stack.topic])
    partitions = len(description["partitions"])
    await ensure_topics(stack.kafka_bootstrap, [topic], partitions, EVENTS_TOPIC_CONFIGS)
    try:
        with serving(
            config, stack.redis_url, name="bench-collector", factory=COLLECTOR_FACTORY,
            preferred_port=COLLECTOR_PORT, ready_path="/readyz", env={"SPLITSTREAM_EVENTS_TOPIC": topic},
        ) as server:
            yield server, topic
    finally:
        async with _admin(stack.kafka_bootstrap) as admin:
            await admin.delete_topics([topic])
