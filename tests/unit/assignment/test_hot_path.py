"""``/v1/assign``'s handler on the real service over in-memory stores: remembered answers."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
from prometheus_client import REGISTRY

from services.assignment.hot_path import MAX_REMEMBERED_REQUEST_BYTES, AssignHandler, RememberedAnswers
from services.assignment.service import AssignmentService
from splitstream.auth import ApiKeys, Scope
from splitstream.evaluation import Catalog
from splitstream.experiment import Experiment
from tests.unit.assignment.fakes import Feed, MemorySticky, RecordingPublisher

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INGEST = "ingest-key"


def _experiment(key: str, status: str = "running") -> Experiment:
    return Experiment.model_validate({
        "key": key, "salt": key, "created_at": NOW, "status": status,
        "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
    })


class Stand:
    """One handler, the real service over in-memory stores, and what each request cost them."""

    def __init__(self, *experiments: Experiment, remembered: int = 100) -> None:
        self.feed = Feed(*experiments)
        self.sticky, self.publisher = MemorySticky(), RecordingPublisher()
        self.state = {
            "assignments": AssignmentService(self.feed, self.sticky, self.publisher, clock=lambda: NOW),
            "answers": RememberedAnswers(remembered),
        }
        keys = ApiKeys({Scope.INGEST: INGEST, Scope.ADMIN: "admin-key", Scope.READ: "read-key"})
        self.app = SimpleNamespace(state=SimpleNamespace(api_keys=keys))
        self.handler = AssignHandler()

    async def post(self, body: dict[str, Any] | bytes) -> tuple[int, Any]:
        return await self.call("POST", body if isinstance(body, bytes) else orjson.dumps(body), b"")

    async def get(self, query: bytes) -> tuple[int, Any]:
        return await self.call("GET", b"", query)

    async def call(self, method: str, raw: bytes, query: bytes) -> tuple[int, Any]:
        scope = {"type": "http", "method": method, "path": "/v1/assign", "query_string": query,
                 "state": self.state, "app": self.app}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = {b"authorization": f"Bearer {INGEST}".encode(), b"content-length": b"%d" % len(raw)}
        status = await self.handler.respond(scope, receive, send, headers)
        return status, orjson.loads(sent[1]["body"])


async def test_a_returning_user_is_answered_again_without_the_sticky_store_while_the_catalog_holds() -> None:
    stand = Stand(_experiment("title"))
    request = {"user_id": "u1", "attributes": {"country": "CN"}}
    _, first = await stand.post(request)
    _, second = await stand.post(request)  # sticky: read from the store, now repeatable
    lookups = len(stand.sticky.lookups)
    _, third = await stand.post(request)
    assert len(stand.sticky.lookups) == lookups  # remembered: the service was not asked
    assert third == second and second["assignments"][0]["reason"] == "sticky"
    assert first["assignments"][0]["variant"] == third["assignments"][0]["variant"]
    assert len(stand.publisher.published) == 1

    stand.feed.current = Catalog.of([_experiment("title", status="paused")])
    _, paused = await stand.post(request)
    assert paused["assignments"] == []  # a paused experiment is no longer live


async def test_what_changes_something_or_is_long_or_invalid_is_never_remembered() -> None:
    stand = Stand(_experiment("title"))
    quiet = {"user_id": "u2", "log_exposure": False}
    for _ in range(2):  # each time the exposure to send is handed back, and the store asked
        _, answer = await stand.post(quiet)
        assert answer["assignments"][0]["exposure"] is not None
    assert len(stand.sticky.lookups) == 2

    long_request = {"user_id": "u3", "attributes": {"note": "x" * MAX_REMEMBERED_REQUEST_BYTES}}
    for _ in range(3):
        await stand.post(long_request)
    assert len(stand.sticky.lookups) == 5

    for _ in range(2):
        status, error = await stand.post(b'{"user_id": ""}')
        assert status == 422 and "user_id" in orjson.dumps(error).decode()


async def test_a_get_answer_is_never_given_to_a_post_whose_body_is_the_same_bytes() -> None:
    stand = Stand(_experiment("title"))
    query = b"experiment=title&user_id=u4"
    for _ in range(3):  # the first records the sticky, the second is remembered, the third given from memory
        status, answer = await stand.get(query)
        assert status == 200 and answer["reason"] in {"hashed", "sticky"}
    lookups = len(stand.sticky.lookups)
    assert lookups == 2
    status, error = await stand.post(b"?" + query)
    assert status == 400, error  # not JSON, whatever a GET with these bytes was answered


def _answers(source: str) -> float:
    return REGISTRY.get_sample_value("splitstream_assign_answers_total", {"source": source}) or 0.0


async def test_answers_are_counted_by_source_errors_aside() -> None:
    stand = Stand(_experiment("title"))
    before = {source: _answers(source) for source in ("remembered", "computed")}
    for _ in range(4):  # hashed, then sticky (now remembered), then twice from memory
        await stand.post({"user_id": "u5"})
    await stand.post(b"not json")
    assert {source: _answers(source) - before[source] for source in before} == {"remembered": 2, "computed": 2}


async def test_a_size_of_zero_remembers_nothing() -> None:
    stand = Stand(_experiment("title"), remembered=0)
    for _ in range(4):
        await stand.post({"user_id": "u1"})
    assert len(stand.sticky.lookups) == 4
