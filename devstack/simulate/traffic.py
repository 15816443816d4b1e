"""The simulation's HTTP traffic, through the same public APIs a product would use: the admin API creates the
experiment (and its holdout), ``POST /v1/assign`` assigns users and logs their exposures, ``POST /v1/events`` takes
their events, and the analyzer's results are polled until the pipeline has folded everything that was sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from devstack.simulate.scenario import Action, SimulatedUser
from splitstream.experiment import HOLDOUT_ARM

JsonObject = dict[str, Any]
Advance = Callable[[int], None]
"""Called with how many more units of work (users, events) are done: drives a progress bar."""


class SimulationError(RuntimeError):
    """A service refused the simulation's traffic, or the analyzer never caught up with it."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    assignment: str
    collector: str
    analyzer: str
    admin_key: str
    ingest_key: str
    read_key: str

    @classmethod
    def with_keys(cls, assignment: str, collector: str, analyzer: str, keys: Mapping[str, str]) -> Endpoints:
        """``keys``: SPLITSTREAM_{ADMIN,INGEST,READ}_KEY, as in the dev stack's key file."""
        return cls(assignment, collector, analyzer, keys["SPLITSTREAM_ADMIN_KEY"], keys["SPLITSTREAM_INGEST_KEY"],
                   keys["SPLITSTREAM_READ_KEY"])

    def report_url(self, key: str) -> str:
        return f"{self.analyzer}/experiments/{key}"


@dataclass(frozen=True, slots=True)
class Assignment:
    arm: str | None
    """What the analyzer counts the user in: a variant key, ``HOLDOUT_ARM`` for a held-out user (shown nothing by
    the simulations), or None when the user is not in the experiment (``reason`` says why)."""
    reason: str

    @classmethod
    def of(cls, answer: JsonObject) -> Assignment:
        """From one entry of ``POST /v1/assign``'s ``assignments``: a held-out user has reason ``holdout`` and is
        ``in_experiment`` when counted in the holdout arm (the control's key is only what they are shown)."""
        if not answer["in_experiment"]:
            return cls(None, answer["reason"])
        return cls(HOLDOUT_ARM if answer["reason"] == "holdout" else answer["variant"], answer["reason"])

    @property
    def treatment(self) -> str | None:
        """The variant the user is treated with; None when held out or outside the experiment."""
        return None if self.arm in (None, HOLDOUT_ARM) else self.arm


@dataclass(frozen=True, slots=True)
class Expected:
    """What the analyzer must show once it has folded everything sent: ``users`` in the variants and ``held_out``
    in the holdout arm, and for the binomial metric ``tally_metric`` (users with its event) a sum of ``tally`` over
    the variants and ``held_out_tally`` in the holdout arm."""

    tally_metric: str
    users: int = 0
    tally: float = 0
    held_out: int = 0
    held_out_tally: float = 0

    def __add__(self, other: Expected) -> Expected:
        return Expected(self.tally_metric, self.users + other.users, self.tally + other.tally,
                        self.held_out + other.held_out, self.held_out_tally + other.held_out_tally)

    def counted(self, results: JsonObject) -> Expected:
        """The same quantities as ``results`` (the analyzer's answer) count them."""
        users = sum(int(variant["users"]) for variant in results["variants"])
        tally = sum(float(variant["sum"] or 0) for metric in results["metrics"] if metric["key"] == self.tally_metric
                    for variant in metric["variants"])
        holdout = results.get("holdout") or {}
        held_tally = sum(float(arm["sum"] or 0) for metric in holdout.get("metrics", [])
                         if metric["key"] == self.tally_metric
                         for arm in metric["variants"] if arm["key"] == HOLDOUT_ARM)
        return Expected(self.tally_metric, users, tally, int(holdout.get("users", 0)), held_tally)

    @property
    def arms_users(self) -> int:
        return self.users + self.held_out


def event_records(user_id: str, actions: Sequence[Action], now: datetime, id_prefix: str) -> list[JsonObject]:
    """The collector's JSON for ``actions``, timestamped from ``now``; event ids ``{id_prefix}.{n}`` are unique as
    long as the prefixes are."""
    records = []
    for number, action in enumerate(actions):
        record: JsonObject = {"type": "event", "event_id": f"{id_prefix}.{number}", "user_id": user_id,
                              "name": action.name, "timestamp": (now + action.offset).isoformat()}
        if action.value is not None:
            record["value"] = action.value
        records.append(record)
    return records


def _tallies(expected: Expected) -> str:
    held = (f", {expected.held_out} held-out users and {expected.held_out_tally:g} of them converted"
            if expected.held_out else "")
    return f"{expected.users} users and {expected.tally:g} for {expected.tally_metric}{held}"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _checked(answer: httpx.Response) -> httpx.Response:
    if answer.is_error:
        request = answer.request
        raise SimulationError(f"{request.method} {request.url} answered {answer.status_code}: {answer.text[:500]}")
    return answer


class Traffic:
    def __init__(
        self, client: httpx.AsyncClient, endpoints: Endpoints, *, concurrency: int, batch_size: int,
        attempts: int = 4, backoff_seconds: float = 0.5,
    ) -> None:
        self._client = client
        self._endpoints = endpoints
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._attempts = attempts
        self._backoff_seconds = backoff_seconds

    async def _repeatable(self, method: str, url: str, **options: Any) -> httpx.Response:
        """A request that is safe to repeat, tried again on a dropped connection or a 503 (a service restarting,
        Kafka away, a keep-alive connection the server closed as it was reused): assignments are sticky and log
        one exposure per user, events are deduplicated by id, results are reads."""
        for attempt in range(self._attempts):
            last = attempt == self._attempts - 1
            try:
                answer = await self._client.request(method, url, **options)
            except httpx.TransportError as error:
                if last:
                    raise SimulationError(f"{method} {url} failed {self._attempts} times: {error!r}") from error
            else:
                if answer.status_code != 503 or last:
                    return _checked(answer)
            await asyncio.sleep(self._backoff_seconds * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def create(self, definition: JsonObject, salt: str, holdout: JsonObject | None) -> None:
        """Create the holdout (if any), then the experiment, and start it."""
        base, admin = self._endpoints.assignment, _bearer(self._endpoints.admin_key)
        if holdout is not None:
            _checked(await self._client.post(f"{base}/v1/holdouts", json=holdout, headers=admin))
        body = {**definition, "salt": salt}
        _checked(await self._client.post(f"{base}/v1/experiments", json=body, headers=admin))
        _checked(await self._client.post(f"{base}/v1/experiments/{definition['key']}/start", headers=admin))

    async def assign(self, key: str, users: Iterable[SimulatedUser], advance: Advance) -> dict[str, Assignment]:
        """Assign each user through ``POST /v1/assign`` (which logs the exposure of those in the experiment)."""
        gate = asyncio.Semaphore(self._concurrency)
        assignments: dict[str, Assignment] = {}
        url, ingest = f"{self._endpoints.assignment}/v1/assign", _bearer(self._endpoints.ingest_key)

        async def assign_one(user: SimulatedUser) -> None:
            body = {"user_id": user.user_id, "attributes": user.profile.attributes, "experiments": [key]}
            async with gate:
                answer = await self._repeatable("POST", url, json=body, headers=ingest)
            [assignment] = answer.json()["assignments"]
            assignments[user.user_id] = Assignment.of(assignment)
            advance(1)

        await asyncio.gather(*(assign_one(user) for user in users))
        return assignments

    async def send(self, events: Sequence[JsonObject], advance: Advance) -> None:
        """Post ``events`` in batches, a few at a time; every event must be accepted."""
        gate = asyncio.Semaphore(max(1, self._concurrency // 4))
        url, ingest = f"{self._endpoints.collector}/v1/events", _bearer(self._endpoints.ingest_key)

        async def send_batch(batch: Sequence[JsonObject]) -> None:
            async with gate:
                answer = await self._repeatable("POST", url, json={"events": batch}, headers=ingest)
            if answer.json()["accepted"] != len(batch):
                raise SimulationError(f"the collector rejected events: {answer.text[:500]}")
            advance(len(batch))

        batches = [events[start:start + self._batch_size] for start in range(0, len(events), self._batch_size)]
        await asyncio.gather(*(send_batch(batch) for batch in batches))

    async def results(self, key: str, segment: str | None = None) -> JsonObject:
        params = {"segment": segment} if segment is not None else {}
        answer = await self._repeatable("GET", f"{self._endpoints.analyzer}/v1/experiments/{key}/results",
                                        params=params, headers=_bearer(self._endpoints.read_key))
        results: JsonObject = answer.json()
        return results

    async def await_results(
        self, key: str, expected: Expected, watch: Callable[[int], None], within: float = 180
    ) -> JsonObject:
        """Poll the results until they count ``expected``; ``watch`` gets the number of users counted so far (in
        the variants and the holdout arm)."""
        deadline = time.monotonic() + within
        results: JsonObject = {}
        while True:
            results = await self.results(key)
            counted = expected.counted(results)
            watch(counted.arms_users)
            if counted == expected:
                return results
            if time.monotonic() > deadline:
                raise SimulationError(
                    f"the analyzer did not catch up within {within:.0f}s: it counts {_tallies(counted)}; "
                    f"{_tallies(expected)} were sent"
                )
            await asyncio.sleep(0.5)

    async def snapshot(self, key: str) -> None:
        """Have the analyzer record the current statistics: one point of the report's charts over time."""
        url = f"{self._endpoints.analyzer}/v1/experiments/{key}/snapshots"
        _checked(await self._client.post(url, headers=_bearer(self._endpoints.admin_key)))
