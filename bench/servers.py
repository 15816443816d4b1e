"""The benchmarks' own uvicorn processes (the assignment app and the bare ASGI app, the collector), one worker each.

They run beside the dev stack's services (on ports of their own) with the environment `make up` gives those
services, and are tracked with devstack's pid files under ``.run/dev`` so a run that died is cleaned up by the next.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from devstack.api_keys import load_or_create
from devstack.config import PROJECT_ROOT, StackConfig
from devstack.processes import ManagedProcess
from devstack.services import service_env

UVICORN_OPTIONS = ["--host", "127.0.0.1", "--workers", "1", "--no-access-log"]
"""Shared by both servers, so the comparison is of the apps alone."""
ASSIGNMENT_FACTORY = "services.assignment.app:create_app"
BARE_FACTORY = "bench.assignment.bare:create_app"
READY_TIMEOUT_SECONDS = 60.0


class ServerError(RuntimeError):
    """A server did not come up; the message ends with its log."""


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else a port the kernel picks."""
    for candidate in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = probe.getsockname()[1]
            return port
    raise ServerError("no free TCP port on 127.0.0.1")


def _wait_ready(server: Server, path: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.pid() is None:
            raise ServerError(f"{server.name} exited during start-up; its log ends:\n{server.process.tail()}")
        try:
            answer = httpx.get(f"{server.url}{path}", timeout=2)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:200]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.2)
    raise ServerError(
        f"{server.name} was not ready after {READY_TIMEOUT_SECONDS:.0f} s ({last}); its log ends:\n"
        f"{server.process.tail()}"
    )


@contextmanager
def serving(
    config: StackConfig, redis_url: str, *, name: str, factory: str, preferred_port: int, ready_path: str,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """uvicorn serving ``factory`` until the block ends (also on error); ``env`` overrides the dev stack's."""
    process = ManagedProcess(name, config.run_dir, marker=factory)
    process.stop(timeout=10)  # left over from a run that was killed
    server = Server(name, free_port(preferred_port), process)
    argv = [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(server.port), *UVICORN_OPTIONS]
    process.start(argv, env={**service_env(config, redis_url, load_or_create(config)), **(env or {})}, cwd=PROJECT_ROOT)
    try:
        _wait_ready(server, ready_path)
        yield server
    finally:
        process.stop(timeout=20)
