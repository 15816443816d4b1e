"""The aggregation consumer's Kafka client."""

from __future__ import annotations

import structlog
from aiokafka import AIOKafkaConsumer

from services.collector.config import CollectorSettings

log = structlog.get_logger(__name__)


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
