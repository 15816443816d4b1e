"""The fold's minimum Redis version, read from INFO's ``redis_version``."""

from __future__ import annotations

import pytest

from services.collector.adapters.fold import MIN_REDIS_VERSION, server_refusal, version_tuple


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7.0.15", (7, 0, 15)), ("7.2.4", (7, 2, 4)), ("6.0.16", (6, 0, 16)), ("255.255.255", (255, 255, 255)),
     ("7.4.0-rc1", (7, 4, 0)), ("", ())],
)
def test_versions_read_as_numbers(text: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(text) == expected


def test_redis_6_is_too_old_and_7_is_enough() -> None:
    assert version_tuple("6.2.14") < MIN_REDIS_VERSION <= version_tuple("7.0.0") < version_tuple("7.10.1")


@pytest.mark.parametrize(
    ("info", "refused_for"),
    [
        ({"redis_version": "7.0.15", "cluster_enabled": 0}, None),
        ({"redis_version": "7.2.4"}, None),  # a server without the cluster section is standalone
        ({"redis_version": "6.2.14", "cluster_enabled": 0}, "6.2.14"),
        ({"redis_version": "7.2.4", "cluster_enabled": 1}, "cluster mode"),
        ({}, "unknown"),
    ],
)
def test_the_fold_refuses_old_servers_and_cluster_nodes_saying_why(
    info: dict[str, object], refused_for: str | None
) -> None:
    refusal = server_refusal(info)
    if refused_for is None:
        assert refusal is None
    else:
        assert refusal is not None and refused_for in refusal


def test_the_consumer_folds_on_a_cluster_node_but_not_on_an_old_one() -> None:
    assert server_refusal({"redis_version": "7.2.4", "cluster_enabled": 1}, cluster_ok=True) is None
    refusal = server_refusal({"redis_version": "6.2.14", "cluster_enabled": 1}, cluster_ok=True)
    assert refusal is not None and "6.2.14" in refusal
