"""The aggregation consumer's Kafka clients: the events consumer and the dead-letter producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.collector.config import CollectorSettings
from services.collector.decoding import DeadLetter


def events_consumer(settings: CollectorSettings) -> AIOKafkaConsumer:
    """Offsets are committed by hand, only after a batch is in Redis: at-least-once delivery, deduplicated."""
    return AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.consumer_group,
        client_id="splitstream-aggregator",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


class DeadLetterProducer:
    """Writes dead letters to the dead-letter topic; :meth:`send` returns once the broker acknowledged them all."""

    def __init__(self, settings: CollectorSettings, *, request_timeout_ms: int = 15_000) -> None:
        self.topic = settings.dead_letter_topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=request_timeout_ms,
            client_id="splitstream-aggregator-dead-letters",
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Raises aiokafka's ``KafkaError`` if any letter is not acknowledged; the caller retries the lot."""
        pending = [
            await self._producer.send(self.topic, letter.value, key=letter.key, headers=letter.headers)
            for letter in letters
        ]
        await asyncio.gather(*pending)
