"""Where each stack profile lives and listens. ``dev`` serves `make up`/`make demo`; ``test`` serves `make test`
on its own ports and data folders so the two never trample each other."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KAFKA_VERSION = "3.9.2"


@dataclass(frozen=True, slots=True)
class Ports:
    kafka: int
    kafka_controller: int
    redis: int
    assignment: int
    collector: int
    analyzer: int
    consumer_metrics: int


DEV_PORTS = Ports(
    kafka=9092, kafka_controller=9093, redis=6379, assignment=8001, collector=8002, analyzer=8003,
    consumer_metrics=9102,
)
TEST_PORTS = Ports(
    kafka=29092, kafka_controller=29093, redis=26379, assignment=28001, collector=28002, analyzer=28003,
    consumer_metrics=29102,
)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from error


@dataclass(frozen=True, slots=True)
class StackConfig:
    profile: str
    ports: Ports
    run_dir: Path
    cache_dir: Path
    partitions: int
    topic: str
    # Only the dev profile adopts an already-running Redis from REDIS_URL; tests always run their own.
    adopt_redis_url: str | None
    fresh_data: bool

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, name)}"


def dev_config() -> StackConfig:
    ports = Ports(
        kafka=_env_int("SPLITSTREAM_KAFKA_PORT", DEV_PORTS.kafka),
        kafka_controller=_env_int("SPLITSTREAM_KAFKA_CONTROLLER_PORT", DEV_PORTS.kafka_controller),
        redis=_env_int("SPLITSTREAM_REDIS_PORT", DEV_PORTS.redis),
        assignment=_env_int("SPLITSTREAM_ASSIGNMENT_PORT", DEV_PORTS.assignment),
        collector=_env_int("SPLITSTREAM_COLLECTOR_PORT", DEV_PORTS.collector),
        analyzer=_env_int("SPLITSTREAM_ANALYZER_PORT", DEV_PORTS.analyzer),
        consumer_metrics=_env_int("SPLITSTREAM_COLLECTOR_CONSUMER_METRICS_PORT", DEV_PORTS.consumer_metrics),
    )
    return StackConfig(
        profile="dev",
        ports=ports,
        run_dir=Path(os.environ.get("SPLITSTREAM_RUN_DIR", PROJECT_ROOT / ".run" / "dev")),
        cache_dir=PROJECT_ROOT / ".cache",
        partitions=_env_int("SPLITSTREAM_PARTITIONS", 4),
        topic=os.environ.get("SPLITSTREAM_EVENTS_TOPIC", "splitstream.events"),
        adopt_redis_url=os.environ.get("REDIS_URL") or None,
        fresh_data=False,
    )


def test_config() -> StackConfig:
    return StackConfig(
        profile="test",
        ports=TEST_PORTS,
        run_dir=PROJECT_ROOT / ".run" / "test",
        cache_dir=PROJECT_ROOT / ".cache",
        partitions=4,
        topic="splitstream.events",
        adopt_redis_url=None,
        fresh_data=True,
    )
