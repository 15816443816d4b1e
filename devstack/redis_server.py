"""Redis for the stack: adopt ``REDIS_URL`` when a server answers there, otherwise run ``redis-server`` with
append-only persistence in the run folder, installing it from Debian first when it is missing and we are root."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import redis

from devstack.config import PROJECT_ROOT, StackConfig
from devstack.errors import StackError
from devstack.processes import ManagedProcess

INSTALL_HINT = (
    "redis-server is not installed. Install it with `sudo apt-get install -y redis-server` "
    "(or point REDIS_URL at a running Redis 6.2+), then run the command again."
)


def server_process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess("redis", config.run_dir, marker="redis-server")


def answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def _install() -> str:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(INSTALL_HINT)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"]
    result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, check=False)
        result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    binary = shutil.which("redis-server")
    if result.returncode != 0 or binary is None:
        raise StackError(f"installing redis-server with apt-get failed:\n{result.stderr[-2000:]}\n{INSTALL_HINT}")
    return binary


def start(config: StackConfig, timeout: float = 20.0) -> tuple[str, str]:
    """Returns (redis URL, one-line status)."""
    if config.adopt_redis_url:
        if answers(config.adopt_redis_url):
            return config.adopt_redis_url, f"using REDIS_URL={config.adopt_redis_url}"
        note = f"REDIS_URL={config.adopt_redis_url} does not answer; starting our own. "
    else:
        note = ""
    url = f"redis://127.0.0.1:{config.ports.redis}/0"
    process = server_process(config)
    if process.pid() is not None:
        return url, note + f"already running (pid {process.pid()})"
    if answers(url):
        if config.fresh_data:
            raise StackError(f"port {config.ports.redis} already has a Redis that this test run did not start")
        return url, note + f"a Redis already answers on port {config.ports.redis}; using it"
    binary = shutil.which("redis-server") or _install()
    data_dir = config.run_dir / "redis"
    if config.fresh_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary, str(PROJECT_ROOT / "deploy" / "redis" / "redis.conf"),
        "--port", str(config.ports.redis), "--bind", "127.0.0.1", "--dir", str(data_dir), "--daemonize", "no",
    ]
    process.start(argv, env=os.environ, cwd=data_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.pid() is None:
            raise StackError(f"redis-server exited during start-up; its log ends:\n{process.tail()}")
        if answers(url):
            return url, note + f"started (pid {process.pid()}), append-only data in {data_dir}"
        time.sleep(0.1)
    process.stop()
    raise StackError(f"redis-server did not answer within {timeout:.0f}s:\n{process.tail()}")


def stop(config: StackConfig) -> str:
    return server_process(config).stop(timeout=15)
