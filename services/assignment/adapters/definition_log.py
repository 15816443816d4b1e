"""The definitions topic: the latest version of every experiment, keyed by its key, on a compacted Kafka topic.

Other systems (a warehouse loader, another region) can follow definitions without polling Redis. Compaction keeps
the newest record per key; the full history stays in Redis (``GET /v1/experiments/{key}/history``).
"""

from __future__ import annotations

import asyncio

import orjson
from aiokafka.errors import KafkaError

from services.assignment.audit import AuditEntry
from splitstream.errors import DependencyUnavailable
from splitstream.eventlog import EventLog, ensure_topics
from splitstream.experiment import Experiment

COMPACTED = {"cleanup.policy": "compact"}


class DefinitionLog:
    def __init__(self, event_log: EventLog, bootstrap_servers: str, topic: str) -> None:
        self._event_log = event_log
        self._bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._ensured = asyncio.Lock()
        self._topic_ready = False

    async def publish(self, experiment: Experiment, entry: AuditEntry) -> None:
        """Acknowledged by Kafka before this returns; ``DependencyUnavailable`` otherwise."""
        await self._ensure_topic()
        value = orjson.dumps({
            "experiment": experiment.model_dump(mode="json"), "audit": entry.model_dump(mode="json"),
        })
        await self._event_log.publish_record(self.topic, experiment.key.encode(), value)

    async def _ensure_topic(self) -> None:
        # Created on first use (compacted), so that a stack whose topics were made elsewhere needs nothing more.
        if self._topic_ready:
            return
        async with self._ensured:
            if not self._topic_ready:
                try:
                    await ensure_topics(self._bootstrap_servers, [self.topic], partitions=1, configs=COMPACTED)
                except (KafkaError, OSError) as error:
                    raise DependencyUnavailable(f"kafka: cannot create {self.topic} ({error!r})") from error
                self._topic_ready = True
