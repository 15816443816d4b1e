"""The fold's minimum Redis version, read from INFO's ``redis_version``."""

from __future__ import annotations

import pytest

from services.collector.adapters.fold import MIN_REDIS_VERSION, version_tuple


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7.0.15", (7, 0, 15)), ("7.2.4", (7, 2, 4)), ("6.0.16", (6, 0, 16)), ("255.255.255", (255, 255, 255)),
     ("7.4.0-rc1", (7, 4, 0)), ("", ())],
)
def test_versions_read_as_numbers(text: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(text) == expected


def test_redis_6_is_too_old_and_7_is_enough() -> None:
    assert version_tuple("6.2.14") < MIN_REDIS_VERSION <= version_tuple("7.0.0") < version_tuple("7.10.1")
