"""The aggregation consumer's process: ``python -m services.collector.consumer``; stops cleanly on SIGTERM/SIGINT.

Its Prometheus metrics (see :mod:`services.collector.metrics`) are served on ``consumer_metrics_port``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from services.collector.adapters.fold import open_fold_redis
from services.collector.aggregator import Aggregator
from services.collector.config import CollectorSettings
from services.collector.metrics import serve_metrics
from splitstream.heap import freeze_startup_heap
from splitstream.redis_client import AnyRedis

log = structlog.get_logger(__name__)


def _serve_metrics(settings: CollectorSettings) -> Callable[[], None] | None:
    if not settings.consumer_metrics_port:
        return None
    try:
        stop = serve_metrics(settings.consumer_metrics_host, settings.consumer_metrics_port)
    except OSError as error:
        # Counting goes on without being scraped: the events matter more than the view of them.
        log.error("metrics endpoint not served", port=settings.consumer_metrics_port, error=repr(error))
        return None
    log.info("metrics served", host=settings.consumer_metrics_host, port=settings.consumer_metrics_port)
    return stop


async def _redis_client(settings: CollectorSettings) -> AnyRedis:
    """A client of the settings' Redis, standalone or cluster as the server says, once it answers; raises
    :class:`~services.collector.adapters.fold.UnsupportedRedis` for a server the fold cannot use."""
    while True:
        try:
            return await open_fold_redis(settings.redis_url)
        except (RedisError, OSError) as error:
            log.warning("redis unavailable; retrying", error=repr(error))
            await asyncio.sleep(1.0)


async def consume(settings: CollectorSettings) -> None:
    stop_metrics = _serve_metrics(settings)
    redis = await _redis_client(settings)
    if isinstance(redis, RedisCluster):
        log.info("redis runs in cluster mode: each batch is folded in steps, one call per node")
    aggregator = Aggregator(settings, redis)
    freeze_startup_heap()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, aggregator.stop)
    try:
        await aggregator.run_until_stopped()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await redis.aclose()
        if stop_metrics is not None:
            stop_metrics()


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    # uvloop where installed, as uvicorn runs the services: the consumer is mostly socket I/O to Kafka and Redis.
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(consume(CollectorSettings()))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
