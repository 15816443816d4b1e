"""The wrk runs: the bare ASGI app, then ``POST /v1/assign`` in three workloads, each after a short warm-up."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import httpx

from bench.assignment.sdk_timing import ATTRIBUTES
from bench.assignment.wrk import Workload, WrkResult, run_wrk
from bench.process_cpu import CpuMeter, CpuUse

RUN_SECONDS = 10.0
WARMUP_SECONDS = 2.0
POOL_USERS = 100_000
ASSIGN_PATH = "/v1/assign"


@dataclass(frozen=True, slots=True)
class Measured:
    result: WrkResult
    cpu: CpuUse | None
    """The server's CPU over the measured run."""


@dataclass(frozen=True, slots=True)
class LabelledRun:
    label: str
    result: WrkResult
    cpu: CpuUse | None


def assign_workloads(run: str, experiment: str) -> list[tuple[str, Workload]]:
    """Each workload draws its users from ids of its own, so a later run does not find an earlier one's stickies."""
    return [
        (f"{POOL_USERS // 1000}k-user pool", Workload(experiment, POOL_USERS, True, f"{run}-p")),
        ("one returning user", Workload(experiment, 0, True, f"{run}-r")),
        (f"{POOL_USERS // 1000}k-user pool, log_exposure false", Workload(experiment, POOL_USERS, False, f"{run}-n")),
    ]


def bare_workload(run: str, experiment: str) -> Workload:
    """The bodies the pool workload sends; the bare app reads and ignores them."""
    return Workload(experiment, POOL_USERS, True, f"{run}-bare")


def probe_assign(base_url: str, headers: dict[str, str], experiment: str, user_id: str) -> str | None:
    """Why ``POST /v1/assign`` cannot be measured (a missing route, a wrong answer), or None when it can."""
    body: dict[str, Any] = {"user_id": user_id, "attributes": ATTRIBUTES, "experiments": [experiment]}
    try:
        answer = httpx.post(f"{base_url}{ASSIGN_PATH}", json=body, headers=headers, timeout=10)
    except httpx.HTTPError as error:
        return f"POST {ASSIGN_PATH} failed: {error!r}"
    if answer.status_code != 200:
        return f"POST {ASSIGN_PATH} answered {answer.status_code}: {answer.text[:300]}"
    try:
        assignment = answer.json()["assignments"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"POST {ASSIGN_PATH} answered an unexpected body: {answer.text[:300]}"
    if assignment.get("experiment") != experiment or assignment.get("in_experiment") is not True:
        return f"POST {ASSIGN_PATH} did not put a targeted user in {experiment}: {assignment}"
    return None


def measure(
    binary: str, url: str, workload: Workload, headers: dict[str, str], *, server_pid: int | None,
    seconds: float = RUN_SECONDS, warmup_seconds: float = WARMUP_SECONDS,
) -> Measured:
    # The warm-up's users are not the measured run's, so the pool's first visits stay in the measure.
    run_wrk(binary, url, replace(workload, prefix=f"{workload.prefix}w"), seconds=warmup_seconds, headers=headers)
    meter = CpuMeter(server_pid)
    meter.start()
    result = run_wrk(binary, url, workload, seconds=seconds, headers=headers)
    return Measured(result, meter.stop(result.seconds, result.requests))
