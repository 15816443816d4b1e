"""``python -m bench.assignment``: assignment's cost, printed next to its goals.

1. ``POST /v1/assign`` under wrk against one uvicorn worker of the assignment app, started here on a port of its own
   with the dev stack's environment (Kafka and Redis of `make up`), next to a bare ASGI app served by the same
   uvicorn with the same options; three workloads: a 100k-user pool, one returning user, the pool without exposure
   logging. The run's experiment is created and started through the admin API, stopped at the end, and the run's
   sticky records and exposed-user buckets deleted.
2. Local evaluation per call: ``Catalog.evaluate`` and ``SplitStream.assign`` against ``GrowthBook.run``.

Progress goes to stderr, the report to stdout. The exit status is 1 when a part could not be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace

from bench.assignment import bare, http_runs, sdk_timing
from bench.assignment.http_runs import ASSIGN_PATH, LabelledRun, Measured
from bench.assignment.sdk_timing import Timing
from bench.assignment.wrk import CONNECTIONS, THREADS, WrkResult, wrk_binary
from bench.ingest.stack import DevStack, create_running_experiment, delete_matching, run_id, stop_experiment
from bench.process_cpu import CpuUse
from bench.servers import (
    ASSIGNMENT_FACTORY,
    BARE_FACTORY,
    UVICORN_OPTIONS,
    Server,
    ServerError,
    serving,
)
from devstack.config import StackConfig, dev_config
from devstack.redis_server import answers
from splitstream.auth import Scope

ASSIGNMENT_PORT = 8101
BARE_PORT = 8102
GOAL_RPS_RATIO = 0.5
GOAL_P99_RATIO = 2.0
GOAL_SDK_SPEEDUP = 5.0
PROBE_ATTEMPTS = 20
"""A new experiment may reach the service's catalog a moment after it is started."""


@dataclass(frozen=True, slots=True)
class HttpOutcome:
    bare: Measured
    assign: list[LabelledRun]
    unavailable: str | None


def say(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def _probe(url: str, headers: dict[str, str], experiment: str, run: str) -> str | None:
    problem: str | None = None
    for attempt in range(PROBE_ATTEMPTS):
        problem = http_runs.probe_assign(url, headers, experiment, f"{run}-probe{attempt}")
        if problem is None:
            return None
        time.sleep(0.25)
    return problem


async def _clean_up(stack: DevStack, run: str, experiment: str) -> None:
    await stop_experiment(stack, experiment)
    redis = stack.redis()
    try:
        patterns = [stack.keys.sticky("*", f"{run}-*"), stack.keys.exposed_users(experiment, "*")]
        deleted = sum([await delete_matching(redis, pattern) for pattern in patterns])
        say(f"stopped {experiment}; deleted {deleted:,} sticky records and exposed-user buckets of the run")
    finally:
        await redis.aclose()


def _measure_assign(
    binary: str, stack: DevStack, run: str, experiment: str, seconds: float, server_pid: int | None
) -> list[LabelledRun]:
    headers = stack.headers(Scope.INGEST)
    runs = []
    for label, workload in http_runs.assign_workloads(run, experiment):
        say(f"/v1/assign, {label}: {seconds:g} s")
        measured = http_runs.measure(
            binary, stack.assignment_url + ASSIGN_PATH, workload, headers, server_pid=server_pid, seconds=seconds
        )
        runs.append(LabelledRun(label, measured.result, measured.cpu))
    return runs


def measure_http(config: StackConfig, stack: DevStack, run: str, seconds: float) -> HttpOutcome:
    binary = wrk_binary()
    if not answers(stack.redis_url):
        raise SystemExit(f"Redis does not answer at {stack.redis_url}: start the dev stack with `make up`")
    experiment = f"bench-assign-{run}"
    with ExitStack() as servers:
        bare_server = servers.enter_context(serving(
            config, stack.redis_url, name="bench-bare", factory=BARE_FACTORY, preferred_port=BARE_PORT,
            ready_path="/",
        ))
        service: Server | None = None
        try:
            service = servers.enter_context(serving(
                config, stack.redis_url, name="bench-assignment", factory=ASSIGNMENT_FACTORY,
                preferred_port=ASSIGNMENT_PORT, ready_path="/readyz",
            ))
        except ServerError as error:
            not_started = f"the assignment app did not start: {error}"
        say(f"bare ASGI app: {seconds:g} s")
        bare_result = http_runs.measure(
            binary, bare_server.url + ASSIGN_PATH, http_runs.bare_workload(run, experiment),
            stack.headers(Scope.INGEST), server_pid=bare_server.process.pid(), seconds=seconds,
        )
        if service is None:
            return HttpOutcome(bare_result, [], not_started)
        ours = replace(stack, assignment_url=service.url)
        try:
            asyncio.run(create_running_experiment(ours, sdk_timing.experiment_spec(experiment)))
        except RuntimeError as error:
            return HttpOutcome(bare_result, [], str(error))
        try:
            problem = _probe(ours.assignment_url, ours.headers(Scope.INGEST), experiment, run)
            if problem is not None:
                return HttpOutcome(bare_result, [], problem)
            return HttpOutcome(bare_result, _measure_assign(
                binary, ours, run, experiment, seconds, service.process.pid()
            ), None)
        finally:
            asyncio.run(_clean_up(ours, run, experiment))


def _goal(met: bool) -> str:
    return "met" if met else "NOT met"


def _row(label: str, result: WrkResult) -> str:
    errors = f"  ({result.non_2xx:,} non-2xx, {result.socket_errors:,} socket errors)" if (
        result.non_2xx or result.socket_errors) else ""
    return (f"   {label:<52} {result.requests_per_second:>8,.0f} req/s  p50 {result.latency_ms(50):6.2f} ms  "
            f"p99 {result.latency_ms(99):6.2f} ms{errors}")


def _cpu_row(cpu: CpuUse | None, bare_cpu: CpuUse | None) -> str:
    """The server's CPU per request; against the bare app's, the requests/s ratio with a core each."""
    if cpu is None:
        return f"   {'':<52} server CPU not read"
    row = f"   {'':<52} server CPU {cpu.micros_per_unit:.1f} µs/request ({cpu.cores:.2f} cores)"
    if bare_cpu is not None:
        row += f", bare / this = {bare_cpu.micros_per_unit / cpu.micros_per_unit:.2f}"
    return row


def http_report(outcome: HttpOutcome, seconds: float) -> list[str]:
    lines = [
        f"1. HTTP: wrk --latency, {THREADS} threads x {CONNECTIONS} connections, {seconds:g} s per run after a "
        f"{http_runs.WARMUP_SECONDS:g} s warm-up",
        f"   both apps served by uvicorn {' '.join(UVICORN_OPTIONS)}",
        _row(f"bare ASGI app (fixed {len(bare.BODY)}-byte JSON)", outcome.bare.result),
        _cpu_row(outcome.bare.cpu, None),
    ]
    bare_result = outcome.bare.result
    for run in outcome.assign:
        rps_ratio = run.result.requests_per_second / bare_result.requests_per_second
        p99_ratio = run.result.latency_seconds[99] / bare_result.latency_seconds[99]
        met = rps_ratio >= GOAL_RPS_RATIO and p99_ratio <= GOAL_P99_RATIO
        lines.append(_row(f"POST /v1/assign, {run.label}", run.result))
        lines.append(f"   {'':<52} rps ratio {rps_ratio:.2f}, p99 ratio {p99_ratio:.2f}: goal {_goal(met)}")
        lines.append(_cpu_row(run.cpu, outcome.bare.cpu))
    if outcome.unavailable is not None:
        lines.append(f"   POST /v1/assign NOT measured: {outcome.unavailable}")
    lines.append(
        f"   goal: /v1/assign >= {GOAL_RPS_RATIO}x the bare app's requests/s and p99 <= {GOAL_P99_RATIO}x its p99"
    )
    return lines


def sdk_report(timings: list[Timing], growthbook: Timing) -> list[str]:
    lines = [
        f"2. Local evaluation, two variants 50/50 targeted at country in {sdk_timing.TARGET_COUNTRIES}:",
        f"   best of {sdk_timing.REPEATS} passes x {growthbook.calls:,} calls, a distinct user id per call",
    ]
    for timing in (*timings, growthbook):
        lines.append(f"   {timing.name:<36} {timing.micros_per_call:6.2f} µs/call   (in experiment "
                     f"{timing.in_experiment:,}, variant b {timing.variant_b / max(1, timing.in_experiment):.1%})")
    for timing in timings:
        speedup = growthbook.micros_per_call / timing.micros_per_call
        lines.append(f"   GrowthBook / {timing.name}: {speedup:.2f}x; goal >= {GOAL_SDK_SPEEDUP:g}x faster: "
                     f"{_goal(speedup >= GOAL_SDK_SPEEDUP)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.assignment", description="assignment's cost vs its goals")
    parser.add_argument("--seconds", type=float, default=http_runs.RUN_SECONDS, help="length of each wrk run")
    parser.add_argument("--skip-http", action="store_true", help="only the local evaluation timings")
    parser.add_argument("--skip-sdk", action="store_true", help="only the wrk runs")
    args = parser.parse_args()
    run = run_id()
    # Everything shares the machine's cores; the load average tells how busy they were before we began.
    lines = [f"SplitStream assignment benchmark, run {run}: {os.cpu_count()} CPU cores shared by wrk, uvicorn, the "
             f"dev stack and anything else running (1-min load average at start {os.getloadavg()[0]:.2f})"]
    unmeasured = False
    if not args.skip_sdk:
        # First, while no server of ours is running.
        say(f"local evaluation: {sdk_timing.REPEATS} x {sdk_timing.CALLS:,} calls each")
        timings = [sdk_timing.time_catalog(), sdk_timing.time_sdk()]
        lines += ["", *sdk_report(timings, sdk_timing.time_growthbook())]
    if not args.skip_http:
        config = dev_config()
        outcome = measure_http(config, DevStack.discover(), run, args.seconds)
        lines[1:1] = ["", *http_report(outcome, args.seconds)]
        unmeasured = outcome.unavailable is not None
    print("\n".join(lines))
    if unmeasured:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
