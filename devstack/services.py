"""The three HTTP services (uvicorn, one process each) and the aggregation consumer."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass

import httpx

from devstack.config import PROJECT_ROOT, StackConfig
from devstack.errors import StackError
from devstack.processes import ManagedProcess


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    module: str
    http: bool


SERVICES = (
    ServiceSpec("assignment", "services.assignment.app:create_app", http=True),
    ServiceSpec("collector", "services.collector.app:create_app", http=True),
    ServiceSpec("analyzer", "services.analyzer.app:create_app", http=True),
    ServiceSpec("consumer", "services.collector.consumer", http=False),
)


def process_of(config: StackConfig, spec: ServiceSpec) -> ManagedProcess:
    return ManagedProcess(spec.name, config.run_dir, marker=spec.module)


def service_env(config: StackConfig, redis_url: str, keys: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **keys,
        "SPLITSTREAM_KAFKA_BOOTSTRAP_SERVERS": config.kafka_bootstrap,
        "SPLITSTREAM_EVENTS_TOPIC": config.topic,
        "SPLITSTREAM_REDIS_URL": redis_url,
        "SPLITSTREAM_COLLECTOR_CONSUMER_METRICS_HOST": "127.0.0.1",
        "SPLITSTREAM_COLLECTOR_CONSUMER_METRICS_PORT": str(config.ports.consumer_metrics),
        "PYTHONUNBUFFERED": "1",
    }


def _argv(config: StackConfig, spec: ServiceSpec) -> list[str]:
    if not spec.http:
        return [sys.executable, "-m", spec.module]
    port = getattr(config.ports, spec.name)
    return [
        sys.executable, "-m", "uvicorn", "--factory", spec.module, "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log",
    ]


CODE_ROOTS = ("splitstream", "services")


def code_fingerprint() -> str:
    """A digest of the services' code, so that `up` after a change restarts them rather than keep the old code."""
    digest = hashlib.blake2b(digest_size=8)
    for root in CODE_ROOTS:
        for path in sorted((PROJECT_ROOT / root).rglob("*")):
            if path.suffix in {".py", ".lua"}:
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def start_all(config: StackConfig, env: dict[str, str], timeout: float = 60.0) -> list[str]:
    lines = []
    started: list[tuple[ServiceSpec, ManagedProcess]] = []
    fingerprint_file = config.run_dir / "services.code"
    fingerprint = code_fingerprint()
    stale = fingerprint_file.exists() and fingerprint_file.read_text(encoding="utf-8") != fingerprint
    for spec in SERVICES:
        process = process_of(config, spec)
        if process.pid() is not None and stale:
            lines.append(f"{spec.name}: the code changed since it started; {process.stop(timeout=20)}")
        if process.pid() is not None:
            lines.append(f"{spec.name}: already running (pid {process.pid()})")
            continue
        process.start(_argv(config, spec), env=env, cwd=PROJECT_ROOT)
        started.append((spec, process))
    fingerprint_file.write_text(fingerprint, encoding="utf-8")
    for spec, process in started:
        _wait_ready(config, spec, process, timeout)
        where = f" on {config.service_url(spec.name)}" if spec.http else ""
        lines.append(f"{spec.name}: started (pid {process.pid()}){where}")
    return lines


def _wait_ready(config: StackConfig, spec: ServiceSpec, process: ManagedProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.pid() is None:
            raise StackError(f"{spec.name} exited during start-up; its log ends:\n{process.tail()}")
        if not spec.http:
            # The consumer has no HTTP port: alive after a short grace period is as much as we can see.
            time.sleep(1.0)
            if process.pid() is not None:
                return
            continue
        try:
            answer = httpx.get(f"{config.service_url(spec.name)}/readyz", timeout=2)
            if answer.status_code == 200:
                return
            last = answer.text
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.2)
    raise StackError(f"{spec.name} was not ready after {timeout:.0f}s ({last}); its log ends:\n{process.tail()}")


def stop_all(config: StackConfig) -> list[str]:
    # The consumer first, so it commits its offsets while Kafka and Redis are still up.
    order = [s for s in SERVICES if not s.http] + [s for s in SERVICES if s.http]
    return [f"{spec.name}: {process_of(config, spec).stop(timeout=20)}" for spec in order]
