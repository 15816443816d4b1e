"""Fixtures shared by every test layer.

Service and integration tests talk to the real Kafka broker and Redis server that `make test` starts; their
addresses come from the same variables the services read. If they do not answer, those tests fail (they never
skip), so a green run always means the real parts were exercised.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

TEST_KEYS = {
    "admin_key": "test-admin-key",
    "ingest_key": "test-ingest-key",
    "read_key": "test-read-key",
}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return os.environ.get("SPLITSTREAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:29092")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("SPLITSTREAM_REDIS_URL", "redis://127.0.0.1:26379/0")


@pytest.fixture
def unique() -> str:
    """A short unique token for keys, prefixes and topics, so tests never see each other's data."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def common_settings(kafka_bootstrap: str, redis_url: str, unique: str) -> dict[str, str]:
    """Keyword arguments every service's settings class accepts: an isolated topic and Redis prefix."""
    return {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "redis_url": redis_url,
        "redis_prefix": f"test-{unique}",
        "events_topic": f"test-events-{unique}",
        **TEST_KEYS,
    }


@pytest.fixture
async def redis(redis_url: str, common_settings: dict[str, str]) -> AsyncIterator[Redis]:
    """A client of the test Redis; afterwards every key under the test's prefix is deleted."""
    client = Redis.from_url(redis_url)
    yield client
    stale = [key async for key in client.scan_iter(match=f"{common_settings['redis_prefix']}:*", count=1000)]
    if stale:
        await client.delete(*stale)
    await client.aclose()


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_KEYS[scope + '_key']}"}
