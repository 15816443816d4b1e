"""Freshness: from the 202 of a POST holding one conversion of an exposed user to that conversion in the results.

Users are exposed through the collector first and the benchmark waits until the analyzer counts them all. Then,
one user at a time, it posts the user's conversion and reads ``GET /v1/experiments/{key}/results`` back to back
until the metric's converted-user count (``sum``) grows by one. A sample ends when the answer that shows it
arrives, so each is high by up to one GET; the median GET is printed alongside as the resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from bench.ingest.stack import DevStack, iso_now, percentile
from splitstream.auth import Scope

SAMPLES = 50
WARMUP_SAMPLES = 3
METRIC = "converted"
VARIANTS = ("control", "treatment")
TIMEOUT_SECONDS = 10.0


def experiment_spec(key: str, run: str) -> dict[str, Any]:
    return {
        "key": key,
        "variants": [{"key": variant} for variant in VARIANTS],  # an equal split
        "metrics": [{"key": METRIC, "type": "binomial", "event": conversion_event(run), "role": "goal"}],
    }


def conversion_event(run: str) -> str:
    return f"bench.{run}.convert"


def _user(run: str, index: int) -> str:
    return f"{run}-f{index}"


@dataclass(frozen=True, slots=True)
class Freshness:
    seconds: list[float]
    get_seconds: list[float]
    first_read_hits: int
    """Samples already visible in the first GET after the 202: for those, the figure is one GET's duration."""

    def ms(self, q: float) -> float:
        return percentile(self.seconds, q) * 1000

    @property
    def get_median_ms(self) -> float:
        return percentile(self.get_seconds, 50) * 1000


def _counts(results: dict[str, Any]) -> tuple[int, int]:
    """(exposed users, converted users) over every variant."""
    users = sum(int(variant["users"]) for variant in results["variants"])
    metric = next(metric for metric in results["metrics"] if metric["key"] == METRIC)
    converted = sum(int(variant["sum"]) for variant in metric["variants"])
    return users, converted


class _Analyzer:
    def __init__(self, client: httpx.AsyncClient, experiment: str) -> None:
        self._client = client
        self._path = f"/v1/experiments/{experiment}/results"
        self.get_seconds: list[float] = []

    async def counts(self) -> tuple[int, int]:
        began = time.perf_counter()
        answer = await self._client.get(self._path)
        self.get_seconds.append(time.perf_counter() - began)
        answer.raise_for_status()
        return _counts(orjson.loads(answer.content))

    async def wait_until(self, *, users: int, converted: int) -> tuple[float, int]:
        """Read the results until they show at least these counts: perf_counter time of that answer, reads."""
        deadline = time.perf_counter() + TIMEOUT_SECONDS
        reads = 0
        while True:
            seen_users, seen_converted = await self.counts()
            reads += 1
            now = time.perf_counter()
            if seen_users >= users and seen_converted >= converted:
                return now, reads
            if now > deadline:
                raise TimeoutError(f"results still show {seen_users} users, {seen_converted} converted")


def _body(events: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"events": events})


async def measure_freshness(stack: DevStack, experiment: str, run: str) -> Freshness:
    total = WARMUP_SAMPLES + SAMPLES
    exposures = [
        {"type": "exposure", "event_id": f"{_user(run, index)}-x", "user_id": _user(run, index),
         "experiment": experiment, "variant": VARIANTS[index % len(VARIANTS)], "timestamp": iso_now()}
        for index in range(total)
    ]
    ingest_headers = {**stack.headers(Scope.INGEST), "content-type": "application/json"}
    async with (
        httpx.AsyncClient(base_url=stack.collector_url, headers=ingest_headers, timeout=30) as collector,
        httpx.AsyncClient(base_url=stack.analyzer_url, headers=stack.headers(Scope.READ), timeout=30) as analyzer,
    ):
        posted = await collector.post("/v1/events", content=_body(exposures))
        if posted.status_code != 202:
            raise RuntimeError(f"exposures: {posted.status_code} {posted.text[:500]}")
        results = _Analyzer(analyzer, experiment)
        await results.wait_until(users=total, converted=0)
        samples: list[float] = []
        first_read_hits = 0
        for index in range(total):
            conversion = {"type": "event", "event_id": f"{_user(run, index)}-c", "user_id": _user(run, index),
                          "name": conversion_event(run), "timestamp": iso_now()}
            answer = await collector.post("/v1/events", content=_body([conversion]))
            accepted = time.perf_counter()
            if answer.status_code != 202:
                raise RuntimeError(f"conversion: {answer.status_code} {answer.text[:500]}")
            visible, reads = await results.wait_until(users=total, converted=index + 1)
            if index >= WARMUP_SAMPLES:
                samples.append(visible - accepted)
                first_read_hits += reads == 1
        return Freshness(samples, results.get_seconds, first_read_hits)
