"""Bring the whole stack up or down, in dependency order, idempotently."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devstack import kafka, redis_server, services
from devstack.api_keys import keys_file, load_or_create
from devstack.config import StackConfig


@dataclass
class StackInfo:
    redis_url: str
    keys: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)


def up(config: StackConfig, say: Callable[[str], None] = print) -> StackInfo:
    config.log_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    began = time.monotonic()
    redis_url, redis_note = redis_server.start(config)
    timings["redis"] = time.monotonic() - began
    say(f"redis: {redis_note}")

    began = time.monotonic()
    say(f"kafka: {kafka.start(config)}")
    timings["kafka"] = time.monotonic() - began

    keys = load_or_create(config)
    began = time.monotonic()
    for line in services.start_all(config, services.service_env(config, redis_url, keys)):
        say(line)
    timings["services"] = time.monotonic() - began
    say(f"API keys: {keys_file(config)}")
    return StackInfo(redis_url=redis_url, keys=keys, timings=timings)


def down(config: StackConfig, say: Callable[[str], None] = print) -> None:
    for line in services.stop_all(config):
        say(line)
    say(f"kafka: {kafka.stop(config)}")
    say(f"redis: {redis_server.stop(config)}")
