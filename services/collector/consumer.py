"""The aggregation consumer's process: ``python -m services.collector.consumer``; stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import structlog
from redis.asyncio import Redis

from services.collector.aggregator import Aggregator
from services.collector.config import CollectorSettings


async def consume(settings: CollectorSettings) -> None:
    redis = Redis.from_url(settings.redis_url)
    aggregator = Aggregator(settings, redis)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, aggregator.stop)
    try:
        await aggregator.run_until_stopped()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await redis.aclose()


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    asyncio.run(consume(CollectorSettings()))


if __name__ == "__main__":
    main()
