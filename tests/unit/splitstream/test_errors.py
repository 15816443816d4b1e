"""The shared error answer: status, JSON body and the headers an error carries (Retry-After on a 503)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from splitstream.errors import (
    RETRY_AFTER_SECONDS,
    BadRequest,
    DependencyUnavailable,
    FieldError,
    InvalidRequest,
    install_error_handlers,
)


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/")
    async def fail() -> None:
        raise error

    return app


async def answer_of(error: Exception) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_raising(error)), base_url="http://t") as http:
        return await http.get("/")


async def test_an_unavailable_dependency_answers_503_with_retry_after() -> None:
    answer = await answer_of(DependencyUnavailable("kafka: down"))

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert answer.json() == {"error": {"code": "dependency_unavailable", "message": "kafka: down", "fields": []}}


async def test_headers_given_to_an_error_are_sent_and_may_override_the_defaults() -> None:
    answer = await answer_of(DependencyUnavailable("redis: loading", headers={"Retry-After": "30", "X-Why": "load"}))

    assert (answer.headers["retry-after"], answer.headers["x-why"]) == ("30", "load")


async def test_a_bad_request_is_400_and_other_errors_carry_no_extra_header() -> None:
    bad = await answer_of(BadRequest("unreadable", [FieldError("body", "not JSON")]))
    invalid = await answer_of(InvalidRequest("wrong"))

    assert bad.status_code == 400
    assert bad.json()["error"] == {"code": "bad_request", "message": "unreadable",
                                   "fields": [{"field": "body", "reason": "not JSON"}]}
    assert invalid.status_code == 422
    assert "retry-after" not in invalid.headers


def test_the_default_headers_are_not_shared_between_errors() -> None:
    first = DependencyUnavailable("a")
    first.headers["Retry-After"] = "99"

    assert DependencyUnavailable("b").headers == {"Retry-After": str(RETRY_AFTER_SECONDS)}
