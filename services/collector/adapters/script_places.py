"""Where a fold step runs: the one server of a standalone Redis, or the cluster node that holds a key's slot.

A step's call declares no KEYS (it touches the keys of many users), so a cluster client cannot route it by itself:
the caller groups its users by the node of their slots and runs one call per node. A node refuses a key it does not
hold ("non local key") in mid-script, keeping what the call wrote before; every step is safe to run again (see
``fold_steps``), so such a call fails, the topology is read again, and the consumer folds the batch again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_TOPOLOGY_ERRORS = ("non local key", "slot not served", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
"""Error texts of a call that met a slot its node no longer (or not yet) serves."""


class ScriptPlaces(Protocol):
    """Runs one Lua script where the keys of its calls live."""

    def place_of(self, key: str) -> str:
        """The place (a server or node name) that holds ``key``."""
        ...

    async def run(self, place: str, args: Sequence[str | bytes]) -> Any:
        """The script's answer to ``args`` (ARGV; no KEYS), run at ``place``."""
        ...


class SingleServer:
    """A standalone Redis: every key is in its one place."""

    def __init__(self, redis: Redis, script: str) -> None:
        self._script = redis.register_script(script)

    def place_of(self, key: str) -> str:
        return ""

    async def run(self, place: str, args: Sequence[str | bytes]) -> Any:
        return await self._script(keys=[], args=list(args))


class ClusterNodes:
    """A Redis Cluster: a key's place is the primary node serving its slot."""

    def __init__(self, cluster: RedisCluster, script: str) -> None:
        self._cluster = cluster
        self._script = script
        self._sha: str | None = None

    def place_of(self, key: str) -> str:
        node = self._cluster.get_node_from_key(key)
        if node is None:
            raise RedisClusterException(f"no cluster node serves the slot of {key!r}")
        name: str = node.name
        return name

    async def run(self, place: str, args: Sequence[str | bytes]) -> Any:
        node = self._cluster.get_node(node_name=place)
        if node is None:  # the node left the cluster since the places were chosen
            await self._refresh()
            raise RedisClusterException(f"cluster node {place} is gone; the topology was read again")
        try:
            if self._sha is None:
                self._sha = await self._cluster.script_load(self._script)
            try:
                return await self._cluster.execute_command("EVALSHA", self._sha, 0, *args, target_nodes=node)
            except NoScriptError:  # the node restarted, joined since, or had its scripts flushed
                await self._cluster.execute_command("SCRIPT LOAD", self._script, target_nodes=node)
                return await self._cluster.execute_command("EVALSHA", self._sha, 0, *args, target_nodes=node)
        except ResponseError as error:
            if any(text in str(error) for text in _TOPOLOGY_ERRORS):
                await self._refresh()
            raise
        except (RedisConnectionError, RedisTimeoutError, RedisClusterException):
            await self._refresh()
            raise

    async def _refresh(self) -> None:
        # The next attempt must place users by the slots as they are now; the client's own refresh runs only after
        # errors it saw itself, and a script's refusal is not one of them.
        await self._cluster.nodes_manager.initialize()
