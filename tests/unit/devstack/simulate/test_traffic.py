"""The simulation's HTTP driving against a fake transport: what it sends, how it reads the answers, when it
gives up."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devstack.simulate.scenario import Action, SimulatedUser, UserProfile
from devstack.simulate.traffic import Endpoints, Expected, SimulationError, Traffic, event_records
from splitstream.experiment import HOLDOUT_ARM

ENDPOINTS = Endpoints("http://assignment.test", "http://collector.test", "http://analyzer.test", "admin", "ingest",
                      "read")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _traffic(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[Traffic, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Traffic(client, ENDPOINTS, concurrency=4, batch_size=2, attempts=3, backoff_seconds=0), client


def _results(users: list[int], sums: list[float], held: tuple[int, float] | None = None) -> dict[str, Any]:
    """A results answer's counting parts; ``held``: the holdout arm's users and conversions."""
    results: dict[str, Any] = {
        "variants": [{"key": f"v{i}", "users": n} for i, n in enumerate(users)],
        "metrics": [
            {"key": "revenue", "variants": [{"key": f"v{i}", "sum": 1000.0} for i in range(len(users))]},
            {"key": "conversion", "variants": [{"key": f"v{i}", "sum": s} for i, s in enumerate(sums)]},
        ],
    }
    if held is not None:
        arms = [{"key": HOLDOUT_ARM, "sum": held[1]}, *({"key": f"v{i}", "sum": s} for i, s in enumerate(sums)),
                {"key": "(all variants)", "sum": sum(sums)}]
        results["holdout"] = {"users": held[0], "metrics": [
            {"key": "revenue", "variants": [{"key": HOLDOUT_ARM, "sum": 500.0}]},
            {"key": "conversion", "variants": arms},
        ]}
    return results


def test_event_records_carry_values_offsets_and_unique_ids() -> None:
    actions = [Action("title_impression"), Action("read", 2.5, timedelta(seconds=3)),
               Action("purchase", 49.0, -timedelta(days=1))]
    records = event_records("run.user-000001", actions, NOW, "run.user-000001.ev")
    assert [record["event_id"] for record in records] == [
        "run.user-000001.ev.0", "run.user-000001.ev.1", "run.user-000001.ev.2"]
    assert "value" not in records[0] and records[1]["value"] == 2.5
    assert [datetime.fromisoformat(record["timestamp"]) for record in records] == [
        NOW, NOW + timedelta(seconds=3), NOW - timedelta(days=1)]
    assert {record["user_id"] for record in records} == {"run.user-000001"}


async def test_create_makes_the_holdout_before_the_experiment_then_starts_it() -> None:
    calls: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        calls.append((request.url.path, request.headers["authorization"], body))
        return httpx.Response(201, json={})

    traffic, client = _traffic(handler)
    async with client:
        await traffic.create({"key": "exp"}, "salt-1", {"key": "exp-holdout", "share": 0.1})
    assert calls == [
        ("/v1/holdouts", "Bearer admin", {"key": "exp-holdout", "share": 0.1}),
        ("/v1/experiments", "Bearer admin", {"key": "exp", "salt": "salt-1"}),
        ("/v1/experiments/exp/start", "Bearer admin", None),
    ]


async def test_a_refused_request_is_a_simulation_error_naming_the_answer() -> None:
    traffic, client = _traffic(lambda request: httpx.Response(422, json={"error": {"message": "bad variants"}}))
    async with client:
        with pytest.raises(SimulationError, match=r"422.*bad variants"):
            await traffic.create({"key": "exp"}, "salt", None)


async def test_assign_reads_the_arm_each_user_is_counted_in() -> None:
    answers = {  # user → (in_experiment, reason); the variant is what the user is shown
        "exp.user-0": (True, "hashed"), "exp.user-1": (True, "holdout"), "exp.user-2": (False, "holdout"),
        "exp.user-3": (False, "not_targeted"),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["experiments"] == ["exp"] and body["attributes"] == {"channel": "sms"}
        counted, reason = answers[body["user_id"]]
        return httpx.Response(200, json={"assignments": [{
            "experiment": "exp", "variant": "copy_b" if reason == "hashed" else "copy_a", "in_experiment": counted,
            "reason": reason}]})

    users = [SimulatedUser(f"user-{i}", f"exp.user-{i}", UserProfile({"channel": "sms"}, 1.0)) for i in range(4)]
    done: list[int] = []
    traffic, client = _traffic(handler)
    async with client:
        assignments = await traffic.assign("exp", users, done.append)
    assert {user: (a.arm, a.treatment) for user, a in assignments.items()} == {
        "exp.user-0": ("copy_b", "copy_b"),
        "exp.user-1": (HOLDOUT_ARM, None),  # held out and counted in the holdout arm: shown nothing
        "exp.user-2": (None, None),  # a holdout the experiment would not have taken anyway: not counted
        "exp.user-3": (None, None),
    }
    assert sum(done) == 4


async def test_send_batches_and_fails_when_an_event_is_rejected() -> None:
    batches: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        batches.append(len(events))
        rejected = [{"index": i, "field": "timestamp", "reason": "too old"}
                    for i, event in enumerate(events) if event["event_id"] == "bad"]
        return httpx.Response(202, json={"accepted": len(events) - len(rejected), "rejected": rejected})

    sent: list[int] = []
    traffic, client = _traffic(handler)
    async with client:
        await traffic.send([{"event_id": str(i)} for i in range(5)], sent.append)
        assert sorted(batches) == [1, 2, 2] and sum(sent) == 5
        with pytest.raises(SimulationError, match="rejected"):
            await traffic.send([{"event_id": "ok"}, {"event_id": "bad"}], sent.append)


async def test_await_results_polls_until_users_and_tallies_match_in_every_arm() -> None:
    answers = iter([
        _results([3, 4], [1, 0], (0, 0)), _results([5, 5], [2, 1], (1, 0)), _results([5, 5], [2, 2], (1, 0)),
        _results([5, 5], [2, 2], (2, 1)),
    ])
    traffic, client = _traffic(lambda request: httpx.Response(200, json=next(answers)))
    seen: list[int] = []
    async with client:
        results = await traffic.await_results(
            "exp", Expected("conversion", users=10, tally=4, held_out=2, held_out_tally=1), seen.append)
    assert results == _results([5, 5], [2, 2], (2, 1))
    assert seen == [7, 11, 11, 12]


async def test_await_results_without_a_holdout_counts_the_variants_only() -> None:
    traffic, client = _traffic(lambda request: httpx.Response(200, json=_results([5, 5], [2, 2])))
    async with client:
        results = await traffic.await_results("exp", Expected("conversion", users=10, tally=4), lambda users: None)
    assert results == _results([5, 5], [2, 2])


async def test_await_results_gives_up_saying_what_it_saw() -> None:
    traffic, client = _traffic(lambda request: httpx.Response(200, json=_results([3, 4], [1, 0], (1, 0))))
    expected = Expected("conversion", users=10, tally=4, held_out=2, held_out_tally=1)
    async with client:
        with pytest.raises(SimulationError, match=re.escape(
            "counts 7 users and 1 for conversion, 1 held-out users and 0 of them converted; 10 users and 4 for "
            "conversion, 2 held-out users and 1 of them converted were sent"
        )):
            await traffic.await_results("exp", expected, lambda users: None, within=0)


def test_expected_counts_add_up_arm_by_arm() -> None:
    total = Expected("conversion", 3, 1, 1, 0) + Expected("conversion", 2, 2, 1, 1)
    assert total == Expected("conversion", users=5, tally=3, held_out=2, held_out_tally=1)
    assert total.arms_users == 7


async def test_repeatable_requests_survive_dropped_connections_and_503s() -> None:
    failures = iter([httpx.ReadError("connection reset"), httpx.Response(503, json={}), None])

    def handler(request: httpx.Request) -> httpx.Response:
        failure = next(failures)
        if isinstance(failure, Exception):
            raise failure
        return failure or httpx.Response(200, json=_results([1], [1]))

    traffic, client = _traffic(handler)
    async with client:
        assert await traffic.results("exp") == _results([1], [1])


async def test_repeatable_requests_give_up_after_the_last_attempt() -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        raise httpx.ConnectError("connection refused")

    traffic, client = _traffic(handler)
    async with client:
        with pytest.raises(SimulationError, match="failed 3 times"):
            await traffic.results("exp")
    assert len(attempts) == 3


async def test_a_lasting_503_is_reported_not_retried_forever() -> None:
    traffic, client = _traffic(lambda request: httpx.Response(503, json={"error": {"message": "kafka"}}))
    async with client:
        with pytest.raises(SimulationError, match="503"):
            await traffic.send([{"event_id": "1"}], lambda sent: None)
