"""Ingest: events/s that one collector worker accepts (202 = acknowledged by Kafka), and the producer's ceiling.

The client sends pre-serialised bodies (``content=``) over a few keep-alive connections, so that the client's
own JSON encoding does not compete with the collector for the machine's cores. The ceiling is aiokafka producing
the very same event bytes, configured as :class:`splitstream.eventlog.EventLog` (idempotent, ``acks=all``,
``linger_ms=2``) and handed over as it does (whole record batches per partition,
:func:`splitstream.eventlog.send_record_batches`), with the same concurrency and the same per-batch wait for every
acknowledgement.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.ingest.stack import DevStack, iso_now, percentile
from bench.process_cpu import CpuMeter, CpuUse
from splitstream.auth import Scope
from splitstream.eventlog import send_record_batches
from splitstream.partitioning import KeyPartitioner

BATCH_EVENTS = 500
REQUESTS = 600
WARMUP_REQUESTS = 6
CONNECTIONS = 4
DISTINCT_USERS = 50_000


@dataclass(frozen=True, slots=True)
class IngestWorkload:
    """``batches[i]`` holds the (key, value) records of request ``i``; ``bodies[i]`` is that request's body."""

    batches: list[list[tuple[bytes, bytes]]]
    bodies: list[bytes]

    @property
    def events(self) -> int:
        return sum(len(batch) for batch in self.batches)


def id_prefix(run: str) -> str:
    """What every user id and event id of this workload starts with."""
    return f"{run}-i"


def build_workload(run: str, *, requests: int = REQUESTS + WARMUP_REQUESTS) -> IngestWorkload:
    """Track events of a name no metric listens to: the collector's work does not depend on it, the consumer's
    is then the least (a dedup mark and the user's pending list)."""
    timestamp = iso_now()
    name = f"bench.{run}.ingest"
    ids = id_prefix(run)
    batches: list[list[tuple[bytes, bytes]]] = []
    for request in range(requests):
        batch = []
        for index in range(BATCH_EVENTS):
            user = f"{ids}{(request * BATCH_EVENTS + index) % DISTINCT_USERS}"
            event = {"type": "event", "event_id": f"{ids}{request}-{index}", "user_id": user, "name": name,
                     "value": 19.9, "timestamp": timestamp}
            batch.append((user.encode(), orjson.dumps(event)))
        batches.append(batch)
    bodies = [b'{"events":[' + b",".join(value for _, value in batch) + b"]}" for batch in batches]
    return IngestWorkload(batches, bodies)


@dataclass(frozen=True, slots=True)
class Throughput:
    events: int
    seconds: float
    latencies: list[float]
    """Seconds per request (HTTP) or per batch (producer), warm-up excluded."""
    cpu: CpuUse | None = None
    """The collector's CPU over the same span (HTTP only)."""

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def latency_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


async def _drive(items: Sequence[int], send: Callable[[int], Awaitable[None]], concurrency: int) -> list[float]:
    """Send ``items`` from ``concurrency`` loops, each waiting for its answer before the next; per-item seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    latencies: list[float] = []

    async def loop() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            began = time.perf_counter()
            await send(item)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies


async def _timed(
    workload: IngestWorkload, send: Callable[[int], Awaitable[None]], meter: CpuMeter | None = None
) -> Throughput:
    await _drive(range(WARMUP_REQUESTS), send, CONNECTIONS)
    timed = range(WARMUP_REQUESTS, len(workload.bodies))
    events = sum(len(workload.batches[i]) for i in timed)
    if meter is not None:
        meter.start()
    began = time.perf_counter()
    latencies = await _drive(timed, send, CONNECTIONS)
    seconds = time.perf_counter() - began
    return Throughput(events, seconds, latencies, meter.stop(seconds, events) if meter is not None else None)


async def measure_http_ingest(
    stack: DevStack, collector_url: str, workload: IngestWorkload, collector_pid: int | None
) -> Throughput:
    headers = {**stack.headers(Scope.INGEST), "content-type": "application/json"}
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=collector_url, headers=headers, limits=limits, timeout=60) as client:

        async def post(index: int) -> None:
            answer = await client.post("/v1/events", content=workload.bodies[index])
            if answer.status_code != 202 or answer.json()["accepted"] != len(workload.batches[index]):
                raise RuntimeError(f"POST /v1/events answered {answer.status_code}: {answer.text[:500]}")

        return await _timed(workload, post, CpuMeter(collector_pid))


async def measure_producer_ceiling(stack: DevStack, topic: str, workload: IngestWorkload) -> Throughput:
    """The same records straight to ``topic``, with the collector's producer settings and, as the collector sends
    a batch, as whole record batches per partition."""
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=2,
        client_id="splitstream-bench", partitioner=KeyPartitioner(),
    )
    await producer.start()
    try:

        async def produce(index: int) -> None:
            await asyncio.gather(*await send_record_batches(producer, topic, workload.batches[index]))

        return await _timed(workload, produce)
    finally:
        await producer.stop()
