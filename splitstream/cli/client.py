"""A small synchronous client of the assignment service's admin API and the analyzer's read API.

Answers stay plain JSON objects: the CLI only displays them, and a client that re-validated them with the
services' models would break on every field a newer server adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import quote

import httpx

JsonObject: TypeAlias = dict[str, Any]

ADMIN_KEY_VARIABLE = "SPLITSTREAM_ADMIN_KEY"
READ_KEY_VARIABLE = "SPLITSTREAM_READ_KEY"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    reason: str


class CliError(Exception):
    """A call that did not succeed: the server's error (status, code, message, fields) or why it never answered."""

    def __init__(
        self, message: str, *, status_code: int | None = None, code: str | None = None,
        fields: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.fields = fields or []


class KeyScope(StrEnum):
    ADMIN = "admin"
    READ = "read"


@dataclass(frozen=True, slots=True)
class PowerEstimate:
    users_per_variant: int
    days: int | None


def _error_from(response: httpx.Response) -> CliError:
    request = response.request
    where = f"{request.method} {request.url}"
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        text = response.text.strip()[:500] or response.reason_phrase
        return CliError(f"{where} answered {response.status_code}: {text}", status_code=response.status_code)
    fields = [
        FieldProblem(str(item.get("field", "")), str(item.get("reason", "")))
        for item in error.get("fields") or []
        if isinstance(item, dict)
    ]
    message = str(error.get("message") or response.reason_phrase)
    code = str(error["code"]) if error.get("code") is not None else None
    return CliError(message, status_code=response.status_code, code=code, fields=fields)


def _path(key: str) -> str:
    # Keys are validated by the server; quoting keeps a stray "/" or "?" from turning into another route.
    return quote(key, safe="")


class SplitStreamClient:
    """One method per HTTP call. A method needing a key that was not given raises :class:`CliError` before any
    request is sent. Reads use the read key, or the admin key (which holds every scope) when only it is set."""

    def __init__(
        self,
        assignment_url: str,
        analyzer_url: str,
        *,
        admin_key: str | None = None,
        read_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.assignment_url = assignment_url.rstrip("/")
        self.analyzer_url = analyzer_url.rstrip("/")
        self._keys = {KeyScope.ADMIN: admin_key, KeyScope.READ: read_key or admin_key}
        self._http = httpx.Client(transport=transport, timeout=timeout)

    def __enter__(self) -> SplitStreamClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _headers(self, scope: KeyScope) -> dict[str, str]:
        key = self._keys[scope]
        if not key:
            variable = ADMIN_KEY_VARIABLE if scope is KeyScope.ADMIN else READ_KEY_VARIABLE
            raise CliError(
                f"this command needs the {scope.value} API key: set {variable} "
                "(the local dev stack writes its keys to .run/dev/api-keys.env)"
            )
        return {"Authorization": f"Bearer {key}"}

    def _call(
        self,
        method: str,
        url: str,
        scope: KeyScope,
        *,
        json: JsonObject | None = None,
        params: dict[str, str] | None = None,
    ) -> JsonObject:
        headers = self._headers(scope)
        try:
            response = self._http.request(method, url, headers=headers, json=json, params=params)
        except httpx.TransportError as error:
            raise CliError(f"cannot reach {url}: {error or type(error).__name__}") from error
        if response.is_error:
            raise _error_from(response)
        try:
            body: Any = response.json()
        except ValueError as error:
            raise CliError(f"{method} {url} answered {response.status_code} with a body that is not JSON") from error
        if not isinstance(body, dict):
            raise CliError(f"{method} {url} answered {response.status_code} with JSON that is not an object")
        return body

    # Assignment service: experiment administration.

    def list_experiments(self) -> list[JsonObject]:
        answer = self._call("GET", f"{self.assignment_url}/v1/experiments", KeyScope.READ)
        return list(answer.get("experiments", []))

    def get_experiment(self, key: str) -> JsonObject:
        return self._call("GET", f"{self.assignment_url}/v1/experiments/{_path(key)}", KeyScope.READ)

    def experiment_history(self, key: str) -> list[JsonObject]:
        answer = self._call("GET", f"{self.assignment_url}/v1/experiments/{_path(key)}/history", KeyScope.READ)
        return list(answer.get("entries", []))

    def create_experiment(self, definition: JsonObject) -> JsonObject:
        return self._call("POST", f"{self.assignment_url}/v1/experiments", KeyScope.ADMIN, json=definition)

    def start_experiment(self, key: str) -> JsonObject:
        return self._call("POST", f"{self.assignment_url}/v1/experiments/{_path(key)}/start", KeyScope.ADMIN)

    def pause_experiment(self, key: str) -> JsonObject:
        return self._call("POST", f"{self.assignment_url}/v1/experiments/{_path(key)}/pause", KeyScope.ADMIN)

    def stop_experiment(self, key: str) -> JsonObject:
        return self._call("POST", f"{self.assignment_url}/v1/experiments/{_path(key)}/stop", KeyScope.ADMIN)

    def ship_experiment(self, key: str, variant: str) -> JsonObject:
        url = f"{self.assignment_url}/v1/experiments/{_path(key)}/ship"
        return self._call("POST", url, KeyScope.ADMIN, json={"variant": variant})

    # Analyzer: results and the power calculator.

    def results(self, key: str, *, segment: str | None = None, method: str | None = None) -> JsonObject:
        """The readout with every comparison as a lift (``difference=relative``): the CLI prints lifts."""
        params = {name: value for name, value in (("segment", segment), ("method", method)) if value is not None}
        params["difference"] = "relative"
        url = f"{self.analyzer_url}/v1/experiments/{_path(key)}/results"
        return self._call("GET", url, KeyScope.READ, params=params)

    def power(
        self,
        *,
        baseline_rate: float,
        relative_mde: float,
        variants: int = 2,
        daily_users: int | None = None,
        alpha: float = 0.05,
        power: float = 0.8,
    ) -> PowerEstimate:
        request: JsonObject = {
            "baseline_rate": baseline_rate, "relative_mde": relative_mde, "variants": variants, "alpha": alpha,
            "power": power,
        }
        if daily_users is not None:
            request["daily_users"] = daily_users
        answer = self._call("POST", f"{self.analyzer_url}/v1/stats/power", KeyScope.READ, json=request)
        try:
            days = answer.get("days")
            return PowerEstimate(int(answer["users_per_variant"]), None if days is None else int(days))
        except (KeyError, TypeError, ValueError) as error:
            raise CliError(f"unexpected answer from the power calculator: {answer}") from error
