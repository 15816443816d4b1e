"""``python -m bench.ingest``: the four measurements against the running dev stack, printed next to their goals.

Order matters on a small machine: each phase starts once the consumer has folded everything the previous one
sent, so that no phase pays for another's backlog. Progress goes to stderr, the report to stdout. The run's
experiments are stopped at the end (their results stay readable) and its per-user and per-event keys deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass

import httpx

from bench.ingest import aggregation, freshness
from bench.ingest.aggregation import AggregationResult, measure_aggregation
from bench.ingest.freshness import Freshness, measure_freshness
from bench.ingest.ingest import (
    BATCH_EVENTS,
    CONNECTIONS,
    REQUESTS,
    Throughput,
    build_workload,
    measure_http_ingest,
    measure_producer_ceiling,
)
from bench.ingest.own_collector import own_collector
from bench.ingest.redis_ceiling import RedisCeilings, measure_redis_ceilings
from bench.ingest.stack import (
    ConsumerProgress,
    DevStack,
    RedisConditions,
    create_running_experiment,
    delete_matching,
    redis_conditions,
    run_id,
    service_pid,
    stop_experiment,
)
from bench.process_cpu import CpuUse
from devstack.config import dev_config

GOAL_EVENTS_PER_SECOND = 50_000
GOAL_FRESHNESS_P95_MS = 1_000
GOAL_BYTES_PER_USER_METRIC = 100
DRAIN_TIMEOUT_SECONDS = 120


@dataclass(frozen=True, slots=True)
class Measurements:
    ingest: Throughput
    producer: Throughput
    aggregation: AggregationResult
    redis: RedisCeilings
    freshness: Freshness
    redis_before: RedisConditions
    redis_after: RedisConditions


def say(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


async def check_ready(stack: DevStack) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for url in (stack.assignment_url, stack.collector_url, stack.analyzer_url):
            try:
                answer = await client.get(f"{url}/readyz")
            except httpx.HTTPError as error:
                raise SystemExit(f"{url} does not answer ({error!r}): start the dev stack with `make up`") from error
            if answer.status_code != 200:
                raise SystemExit(f"{url}/readyz: {answer.status_code} {answer.text}")


async def measure(stack: DevStack, run: str, experiments: list[str]) -> Measurements:
    redis = stack.redis()
    consumer = ConsumerProgress(redis, stack.keys)
    try:
        say("waiting for the consumer to be idle")
        async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS):
            await consumer.settle()
        before = await redis_conditions(redis)
        workload = build_workload(run)
        async with own_collector(dev_config(), stack, run) as (collector, topic):
            say(f"ingest: {len(workload.bodies)} POSTs of {BATCH_EVENTS} events to a collector of our own")
            ingest = await measure_http_ingest(stack, collector.url, workload, collector.process.pid())
            say("ingest ceiling: the same records straight to its topic with aiokafka")
            producer = await measure_producer_ceiling(stack, topic, workload)
        experiments.append(f"bench-agg-{run}")
        await create_running_experiment(stack, aggregation.experiment_spec(experiments[-1], run))
        say(f"aggregation: {aggregation.USERS} users x (1 exposure + {aggregation.METRICS} events) via EventLog")
        folded = await measure_aggregation(stack, redis, experiments[-1], run, service_pid("consumer"))
        say("aggregation ceiling: redis-benchmark")
        ceilings = await measure_redis_ceilings(stack.redis_url, run)

        experiments.append(f"bench-fresh-{run}")
        await create_running_experiment(stack, freshness.experiment_spec(experiments[-1], run))
        say(f"freshness: {freshness.SAMPLES} conversions, one at a time")
        fresh = await measure_freshness(stack, experiments[-1], run)
        return Measurements(ingest, producer, folded, ceilings, fresh, before, await redis_conditions(redis))
    finally:
        await redis.aclose()


async def clean_up(stack: DevStack, run: str, experiments: list[str]) -> None:
    for key in experiments:
        await stop_experiment(stack, key)
    redis = stack.redis()
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await ConsumerProgress(redis, stack.keys).settle()
        patterns = [stack.keys.user_state(f"{run}-*")]
        # The analyzer reads only the variants' sums, so the stopped experiments' results stay readable.
        for key in experiments:
            patterns += [stack.keys.exposed_users(key, "*"), stack.keys.pending(key, "*")]
        deleted = sum([await delete_matching(redis, pattern) for pattern in patterns])
        say(f"stopped {', '.join(experiments) or 'no experiment'}; deleted the run's {deleted:,} user states, "
            "pending lists and exposed-user buckets")
    finally:
        await redis.aclose()


def _goal(met: bool) -> str:
    return "met" if met else "NOT met"


def _cpu(process: str, use: CpuUse | None, unit: str, note: str) -> str:
    if use is None:
        return f"   {process} CPU: not read (no /proc, or the process was not found)"
    return f"   {process} CPU: {use.describe(unit)} ({note})"


def report(stack: DevStack, run: str, m: Measurements) -> list[str]:
    ingest, producer, folded, redis, fresh = m.ingest, m.producer, m.aggregation, m.redis, m.freshness
    alone = folded.backlog_at_publish_end >= 0.1 * folded.events
    consumer_rate = folded.consumer_alone_per_second if alone else folded.end_to_end_per_second
    samples = ", ".join(f"{kind} {size:.0f}" for kind, size in folded.sampled_bytes.items())
    return [
        f"SplitStream pipeline benchmark, run {run}: {os.cpu_count()} CPU cores, every service and Kafka, Redis "
        f"and this client on them; Kafka {stack.kafka_bootstrap}; the dev stack's collector "
        f"{stack.collector_url} for the freshness",
        f"Redis held {m.redis_before.keys:,} keys ({m.redis_before.used_memory / 2**20:,.0f} MiB) at the start; "
        f"it forked {m.redis_after.forks - m.redis_before.forks} times during the run (AOF rewrites, snapshots)",
        "",
        f"1. Ingest, one collector worker (our own uvicorn; its topic has no consumer): {REQUESTS} POSTs x "
        f"{BATCH_EVENTS} events, {CONNECTIONS} connections",
        f"   {ingest.requests_per_second:,.1f} requests/s, {ingest.events_per_second:,.0f} events/s accepted (202); "
        f"latency p50 {ingest.latency_ms(50):,.0f} ms, p95 {ingest.latency_ms(95):,.0f} ms",
        f"   ceiling, aiokafka alone (same bytes, acks=all, idempotent, record batches per partition): "
        f"{producer.events_per_second:,.0f} events/s; "
        f"collector/ceiling = {ingest.events_per_second / producer.events_per_second:.2f}",
        _cpu("collector", ingest.cpu, "event", "its rate with a core of its own"),
        f"   goal >= {GOAL_EVENTS_PER_SECOND:,} events/s per worker: "
        f"{_goal(ingest.events_per_second >= GOAL_EVENTS_PER_SECOND)}",
        "",
        f"2. Aggregation, one consumer: {folded.events:,} events ({aggregation.USERS:,} exposures + "
        f"{aggregation.USERS * aggregation.METRICS:,} metric events) published with EventLog",
        f"   {consumer_rate:,.0f} events/s folded "
        + (f"(the {folded.backlog_at_publish_end:,} left after the last ack drained in {folded.drain_seconds:.2f} s)"
           if alone else "(kept up with the producer: a lower bound)"),
        f"   publish to last fold: {folded.end_to_end_per_second:,.0f} events/s (producer and consumer sharing cores)",
        _cpu("consumer", folded.consumer_cpu, "event", "the process alone; the fold runs in Redis"),
        _cpu("Redis", folded.redis_cpu, "event", "the fold script, the consumer's reads and writes, the rest"),
        f"   ceiling, redis-benchmark on the same Redis: fold.lua alone (EVALSHA, {redis.fold_batch}-event batches, "
        f"1 client) {redis.fold_events:,.0f} events/s; consumer/ceiling = {consumer_rate / redis.fold_events:.2f}",
        f"   plain commands (4 clients, pipeline 16): SET {redis.set_ops:,.0f} ops/s, "
        f"HINCRBYFLOAT {redis.hincrbyfloat_ops:,.0f} ops/s",
        f"   goal >= {GOAL_EVENTS_PER_SECOND:,} events/s per consumer: "
        f"{_goal(consumer_rate >= GOAL_EVENTS_PER_SECOND)}",
        "",
        f"3. Freshness, 202 of a one-conversion POST to visible in GET results: {len(fresh.seconds)} samples, "
        "pipeline otherwise idle",
        f"   p50 {fresh.ms(50):,.1f} ms, p95 {fresh.ms(95):,.1f} ms, max {fresh.ms(100):,.1f} ms; visible in the "
        f"first GET after the 202 in {fresh.first_read_hits}/{len(fresh.seconds)} (one GET: median "
        f"{fresh.get_median_ms:.1f} ms)",
        f"   goal p95 <= {GOAL_FRESHNESS_P95_MS:,} ms: {_goal(fresh.ms(95) <= GOAL_FRESHNESS_P95_MS)}",
        "",
        f"4. Redis memory: used_memory +{(folded.memory_after.used - folded.memory_before.used) / 2**20:,.1f} MiB "
        f"for {aggregation.USERS:,} users x {aggregation.METRICS} metrics = {folded.bytes_per_user_metric:,.0f} bytes "
        f"per (user, metric), of which {folded.key_table_bytes_per_user_metric:,.0f} in Redis's key tables",
        f"   MEMORY USAGE (user states and pending lists: {aggregation.MEMORY_SAMPLE_USERS} of the users), "
        f"bytes per (user, metric): {samples}",
        f"   goal <= {GOAL_BYTES_PER_USER_METRIC} bytes: "
        f"{_goal(folded.bytes_per_user_metric <= GOAL_BYTES_PER_USER_METRIC)}",
    ]


async def main() -> None:
    stack = DevStack.discover()
    await check_ready(stack)
    run = run_id()
    experiments: list[str] = []
    try:
        measurements = await measure(stack, run, experiments)
    except TimeoutError as error:
        raise SystemExit(
            "the consumer did not fold what was sent in time: is it running? (.run/dev/logs/consumer.log)"
        ) from error
    finally:
        await clean_up(stack, run, experiments)
    print("\n".join(report(stack, run, measurements)))


if __name__ == "__main__":
    asyncio.run(main())
