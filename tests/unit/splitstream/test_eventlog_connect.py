import asyncio

from aiokafka.errors import KafkaConnectionError

from splitstream.eventlog import connected


class FlakyProducer:
    """Fails to start ``failures`` times, then starts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.running = False
        self.stopped = False
        self.started = asyncio.Event()

    async def start(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise KafkaConnectionError("broker down")
        self.running = True
        self.started.set()

    async def stop(self) -> None:
        self.stopped = True
        self.running = False


async def test_a_reachable_broker_is_connected_before_serving() -> None:
    producer = FlakyProducer(failures=0)
    async with connected(producer, retry_seconds=60) as inside:
        assert inside is producer
        assert producer.running
    assert producer.stopped


async def test_an_unreachable_broker_is_retried_in_the_background_until_it_answers() -> None:
    producer = FlakyProducer(failures=3)
    async with connected(producer, retry_seconds=0.01):
        assert not producer.running
        await asyncio.wait_for(producer.started.wait(), timeout=5)
    assert producer.attempts == 4
    assert producer.stopped


async def test_leaving_stops_the_retries() -> None:
    producer = FlakyProducer(failures=1_000_000)
    async with connected(producer, retry_seconds=0.01):
        await asyncio.sleep(0.05)
    attempts_when_left = producer.attempts
    await asyncio.sleep(0.05)
    assert producer.attempts == attempts_when_left
    assert producer.stopped
