"""Start-up without Kafka: the producer keeps connecting in the background instead of failing the service."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaConnectionError

from services.collector.adapters.kafka import connect_event_log


class FlakyEventLog:
    """Refuses ``failures`` connection attempts, then connects."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.started = False

    async def start(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise KafkaConnectionError("broker down")
        self.started = True


async def test_a_reachable_broker_is_connected_before_start_up_ends() -> None:
    log = FlakyEventLog(failures=0)

    retrying = await connect_event_log(log, retry_seconds=0.01)  # type: ignore[arg-type]

    assert retrying is None
    assert (log.attempts, log.started) == (1, True)


async def test_an_unreachable_broker_is_retried_until_it_answers() -> None:
    log = FlakyEventLog(failures=3)

    retrying = await connect_event_log(log, retry_seconds=0.01)  # type: ignore[arg-type]

    assert retrying is not None and not log.started
    await asyncio.wait_for(retrying, timeout=5)
    assert (log.attempts, log.started) == (4, True)
