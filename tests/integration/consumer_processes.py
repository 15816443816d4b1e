"""Aggregation consumers run as real processes (``python -m services.collector.consumer``), and a view of their
consumer group on the broker: members and their partitions, committed offsets, end offsets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from prometheus_client.parser import text_string_to_metric_families

from services.collector.config import CollectorSettings

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, within: float) -> T:
    """The first truthy answer of ``probe``, polled every 50 ms; fails naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        answer = await probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s (last answer {answer!r})")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ConsumerProcess:
    """One consumer process; its output goes to ``log_path`` (a pipe nobody reads could fill and stall it)."""

    process: asyncio.subprocess.Process
    log_path: Path
    metrics_port: int

    @classmethod
    async def start(cls, settings: CollectorSettings, group: str, log_path: Path) -> Self:
        metrics_port = free_port()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SPLITSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "SPLITSTREAM_REDIS_URL": settings.redis_url,
            "SPLITSTREAM_REDIS_PREFIX": settings.redis_prefix,
            "SPLITSTREAM_EVENTS_TOPIC": settings.events_topic,
            "SPLITSTREAM_DEAD_LETTER_TOPIC": settings.dead_letter_topic,
            "SPLITSTREAM_COLLECTOR_CONSUMER_GROUP": group,
            "SPLITSTREAM_COLLECTOR_CONSUMER_METRICS_HOST": "127.0.0.1",
            "SPLITSTREAM_COLLECTOR_CONSUMER_METRICS_PORT": str(metrics_port),
        }
        for name in ("admin_key", "ingest_key", "read_key"):
            secret = getattr(settings, name)
            if secret is not None:
                env[f"SPLITSTREAM_{name.upper()}"] = secret.get_secret_value()
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.collector.consumer", env=env, stdout=log, stderr=log,
            )
        return cls(process, log_path, metrics_port)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    async def crash(self) -> None:
        """SIGKILL: no handler runs, nothing in flight is finished or committed."""
        self.process.kill()
        await self.process.wait()

    async def stop(self, within: float = 20.0) -> int:
        """SIGTERM, then the exit status once it has finished its batch and left the group."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout=within)

    async def reap(self) -> None:
        """For ``finally``: kill it if it still runs (also when frozen: SIGKILL ends a stopped process)."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def events_counter(self, outcome: str) -> float:
        """Its own ``splitstream_consumer_events_total{outcome}``, scraped from its metrics endpoint."""
        async with httpx.AsyncClient(timeout=5) as http:
            exposition = (await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                if sample.name == "splitstream_consumer_events_total" and sample.labels.get("outcome") == outcome:
                    return float(sample.value)
        return 0.0


class GroupView:
    """The broker's view of one consumer group over one topic, through an admin client and a group-less consumer."""

    def __init__(self, bootstrap: str, topic: str, group: str, partitions: int) -> None:
        self._group = group
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> Self:
        await self._admin.start()
        await self._offsets.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._offsets.stop()
        await self._admin.close()

    async def end_offsets(self) -> dict[int, int]:
        ends = await self._offsets.end_offsets(self._partitions)
        return {tp.partition: offset for tp, offset in ends.items()}

    async def committed(self) -> dict[int, int]:
        """The group's committed offset per partition (0 where it never committed)."""
        offsets = await self._admin.list_consumer_group_offsets(self._group, partitions=self._partitions)
        return {tp.partition: max(offsets[tp].offset, 0) if tp in offsets else 0 for tp in self._partitions}

    async def caught_up(self) -> bool:
        ends, committed = await self.end_offsets(), await self.committed()
        return all(committed[p] >= end for p, end in ends.items())

    async def stable_assignment(self) -> list[frozenset[int]] | None:
        """The partitions of each member once the group is Stable, or None while it is (re)balancing."""
        description: dict[str, Any] = (await self._admin.describe_consumer_groups([self._group]))[0].to_object()
        group = description["groups"][0]
        if group["state"] != "Stable":
            return None
        return [
            frozenset(
                partition
                for _, partitions in ConsumerProtocolMemberAssignment.decode(member["member_assignment"]).assignment
                for partition in partitions
            )
            for member in group["members"]
        ]
