from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from services.analyzer.calculator.schemas import PowerRequest, PowerResponse
from splitstream.cli.client import CliError, PowerEstimate, SplitStreamClient
from splitstream.errors import Conflict, FieldError, InvalidRequest
from splitstream.experiment import Experiment, Variant

ASSIGNMENT = "http://assignment.test"
ANALYZER = "http://analyzer.test"

Handler = Callable[[httpx.Request], httpx.Response]


def stored_experiment(key: str = "checkout-title") -> dict[str, object]:
    experiment = Experiment(
        key=key, salt=key, created_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        variants=[Variant(key="control"), Variant(key="new_title")],
    )
    return experiment.model_dump(mode="json")


class Recorder:
    """A MockTransport handler that keeps every request and answers with ``answer``."""

    def __init__(self, answer: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)


def client_with(
    answer: Handler, *, admin_key: str | None = "admin-key", read_key: str | None = "read-key"
) -> tuple[SplitStreamClient, Recorder]:
    recorder = Recorder(answer)
    client = SplitStreamClient(
        ASSIGNMENT, ANALYZER, admin_key=admin_key, read_key=read_key, transport=httpx.MockTransport(recorder)
    )
    return client, recorder


def test_reads_use_the_read_key_and_writes_the_admin_key() -> None:
    client, recorder = client_with(lambda request: httpx.Response(200, json=stored_experiment()))
    client.get_experiment("checkout-title")
    client.start_experiment("checkout-title")
    reads, writes = recorder.requests
    assert (reads.method, str(reads.url)) == ("GET", f"{ASSIGNMENT}/v1/experiments/checkout-title")
    assert reads.headers["Authorization"] == "Bearer read-key"
    assert (writes.method, str(writes.url)) == ("POST", f"{ASSIGNMENT}/v1/experiments/checkout-title/start")
    assert writes.headers["Authorization"] == "Bearer admin-key"


def test_reads_fall_back_to_the_admin_key_which_holds_every_scope() -> None:
    client, recorder = client_with(lambda request: httpx.Response(200, json={"experiments": []}), read_key=None)
    assert client.list_experiments() == []
    assert recorder.requests[0].headers["Authorization"] == "Bearer admin-key"


def test_a_missing_admin_key_fails_before_any_request() -> None:
    client, recorder = client_with(lambda request: httpx.Response(200, json=stored_experiment()), admin_key=None)
    with pytest.raises(CliError, match="SPLITSTREAM_ADMIN_KEY"):
        client.stop_experiment("checkout-title")
    assert recorder.requests == []


def test_a_validation_error_carries_the_message_and_the_field_names() -> None:
    body = InvalidRequest("request validation failed", [
        FieldError("body.variants", "Value error, weights must sum to 1"),
        FieldError("body.coverage", "Input should be less than or equal to 1"),
    ]).body()
    client, _ = client_with(lambda request: httpx.Response(422, json=body))
    with pytest.raises(CliError) as raised:
        client.create_experiment({"key": "checkout-title"})
    error = raised.value
    assert (error.status_code, error.code, error.message) == (422, "invalid_request", "request validation failed")
    assert [problem.field for problem in error.fields] == ["body.variants", "body.coverage"]
    assert error.fields[0].reason == "Value error, weights must sum to 1"


def test_an_error_without_the_json_shape_keeps_the_status_and_the_text() -> None:
    client, _ = client_with(lambda request: httpx.Response(502, text="upstream timed out"))
    with pytest.raises(CliError) as raised:
        client.results("checkout-title")
    assert raised.value.status_code == 502
    assert "upstream timed out" in raised.value.message
    assert raised.value.fields == []


def test_a_conflict_is_an_error_too() -> None:
    body = Conflict("experiment checkout-title is stopped; it cannot start again").body()
    client, _ = client_with(lambda request: httpx.Response(409, json=body))
    with pytest.raises(CliError, match="cannot start again") as raised:
        client.start_experiment("checkout-title")
    assert raised.value.code == "conflict"


def test_an_unreachable_service_is_named() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client, _ = client_with(refuse)
    with pytest.raises(CliError, match=r"cannot reach http://analyzer\.test/v1/experiments/k/results"):
        client.results("k")


def test_ship_sends_the_winner_and_results_send_their_query() -> None:
    client, recorder = client_with(lambda request: httpx.Response(200, json={}))
    client.ship_experiment("checkout-title", "new_title")
    client.results("checkout-title", segment="channel", method="bayesian")
    client.results("checkout-title")
    ship, segmented, plain = recorder.requests
    assert json.loads(ship.content) == {"variant": "new_title"}
    assert ship.headers["Authorization"] == "Bearer admin-key"
    # The CLI prints lifts: it always asks for the relative scale, whatever the plan leads with.
    assert dict(segmented.url.params) == {"segment": "channel", "method": "bayesian", "difference": "relative"}
    assert segmented.url.path == "/v1/experiments/checkout-title/results"
    assert str(plain.url) == f"{ANALYZER}/v1/experiments/checkout-title/results?difference=relative"


def test_keys_cannot_reach_another_route() -> None:
    client, recorder = client_with(lambda request: httpx.Response(200, json={"experiment": "a", "entries": []}))
    client.experiment_history("a/../../layers")
    assert recorder.requests[0].url.raw_path == b"/v1/experiments/a%2F..%2F..%2Flayers/history"


def test_power_sends_the_calculator_request_shape() -> None:
    def calculator(request: httpx.Request) -> httpx.Response:
        # The analyzer's own request model forbids unknown fields, so a misnamed field fails here.
        body = PowerRequest.model_validate_json(request.content)
        answer = PowerResponse(users_per_variant=14_751, days=None if body.daily_users is None else 7)
        return httpx.Response(200, json=answer.model_dump(exclude_none=True))

    client, recorder = client_with(calculator)
    estimate = client.power(baseline_rate=0.1, relative_mde=0.05, variants=3, daily_users=9000, alpha=0.01, power=0.9)
    assert estimate == PowerEstimate(users_per_variant=14_751, days=7)
    assert json.loads(recorder.requests[0].content) == {
        "baseline_rate": 0.1, "relative_mde": 0.05, "variants": 3, "daily_users": 9000, "alpha": 0.01, "power": 0.9,
    }
    assert str(recorder.requests[0].url) == f"{ANALYZER}/v1/stats/power"
    assert client.power(baseline_rate=0.1, relative_mde=0.05) == PowerEstimate(users_per_variant=14_751, days=None)


def test_an_answer_that_is_not_an_object_is_an_error() -> None:
    client, _ = client_with(lambda request: httpx.Response(200, json=[1, 2]))
    with pytest.raises(CliError, match="not an object"):
        client.get_experiment("checkout-title")
