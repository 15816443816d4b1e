"""Kafka clients of the collector: keeping the producer connecting, and the aggregation consumer."""

from __future__ import annotations

import asyncio

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog

log = structlog.get_logger(__name__)


async def connect_event_log(event_log: EventLog, retry_seconds: float = 2.0) -> asyncio.Task[None] | None:
    """Start the producer; if Kafka is down, keep trying in the background and return that task.

    The service stays up meanwhile so that /readyz can name Kafka as the missing dependency.
    """
    try:
        await event_log.start()
        return None
    except (KafkaError, OSError) as error:
        log.warning("kafka unavailable at start-up; retrying in the background", error=repr(error))
    return asyncio.create_task(_keep_connecting(event_log, retry_seconds), name="event-log-connect")


async def _keep_connecting(event_log: EventLog, retry_seconds: float) -> None:
    while True:
        await asyncio.sleep(retry_seconds)
        try:
            await event_log.start()
        except (KafkaError, OSError) as error:
            log.warning("kafka still unavailable", error=repr(error))
        else:
            log.info("kafka producer connected")
            return


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
