"""The services' Redis connections pack commands with hiredis, byte for byte as redis-py would."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection

from splitstream.redis_client import HiredisPackedConnection, open_redis

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "f" * 40, 0, *(f"field-{i}|ü|{i * 7}" for i in range(3000))),
    ("HSETNX", b"ss:user:\x00bin:seen", "exp-1", 493_812),
    ("CLIENT SETINFO", "LIB-NAME", "redis-py"),
    (b"CONFIG GET", b"maxmemory"),
    ("HINCRBYFLOAT", "ss:exp:k:v:a", "m:sum", 0.1 + 0.2),  # a float: redis-py's own spelling
    ("SET", "k", ""),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[str(c[0]) for c in COMMANDS])
def test_a_command_is_packed_exactly_as_redis_py_packs_it(command: tuple[Any, ...]) -> None:
    assert b"".join(HiredisPackedConnection().pack_command(*command)) == b"".join(
        Connection().pack_command(*command)
    )


async def test_tcp_urls_get_hiredis_packing_and_unix_sockets_keep_redis_pys_own() -> None:
    tcp, unix = open_redis("redis://127.0.0.1:1/0"), open_redis("unix:///tmp/redis.sock")
    try:
        assert tcp.connection_pool.connection_class is HiredisPackedConnection
        assert unix.connection_pool.connection_class is UnixDomainSocketConnection
        assert isinstance(tcp, Redis)
    finally:
        await tcp.aclose()
        await unix.aclose()
