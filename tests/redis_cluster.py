"""A Redis Cluster of three primaries on this machine, for the tests of the fold on a cluster.

The nodes are ``redis-server`` processes (the binary the stack runs; ``make test`` installs it when missing) on
free ports, without persistence; the slots are split evenly, as ``redis-cli --cluster create`` would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

SLOTS = 16384
BUS_PORT_OFFSET = 10000


def _free_port_with_bus() -> int:
    """A free port whose cluster bus port (the port + 10000) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port + BUS_PORT_OFFSET >= 65536:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + BUS_PORT_OFFSET))
            except OSError:
                continue
        return port


@dataclass
class LocalCluster:
    directory: Path
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, index: int) -> redis.Redis:
        return redis.Redis(port=self.ports[index], socket_timeout=5)

    def owner_of(self, slot: int) -> int:
        """The index of the node that serves ``slot``, as the first node sees the cluster."""
        for start, end, primary, *_replicas in self.node(0).execute_command("CLUSTER SLOTS"):
            if int(start) <= slot <= int(end):
                return self.ports.index(int(primary[1]))
        raise LookupError(f"slot {slot} is not served")

    def move_slot(self, slot: int, target: int) -> None:
        """Migrate ``slot`` and its keys to node ``target``, as a resharding does, and tell every node."""
        source = self.owner_of(slot)
        if source == target:
            return
        ids = [self.node(index).execute_command("CLUSTER MYID").decode() for index in range(len(self.ports))]
        self.node(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        self.node(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        while keys := self.node(source).execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            self.node(source).execute_command("MIGRATE", "127.0.0.1", self.ports[target], "", 0, 5000, "KEYS", *keys)
        for index in range(len(self.ports)):
            self.node(index).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_cluster(directory: Path, primaries: int = 3, timeout: float = 30.0) -> LocalCluster:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    cluster = LocalCluster(directory)
    try:
        for index in range(primaries):
            port = _free_port_with_bus()
            node_dir = directory / f"node-{index}"
            node_dir.mkdir(parents=True)
            argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf", "--dir", str(node_dir), "--save", "", "--appendonly", "no"]
            log = (node_dir / "server.log").open("wb")
            cluster.processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
            cluster.ports.append(port)
        _wait(lambda: all(_answers(cluster.node(i)) for i in range(primaries)), "the nodes answer", timeout)
        share = SLOTS // primaries
        for index in range(primaries):
            node = cluster.node(index)
            last = SLOTS - 1 if index == primaries - 1 else (index + 1) * share - 1
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
            node.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        for port in cluster.ports[1:]:
            cluster.node(0).execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        _wait(lambda: all(_ready(cluster.node(i), primaries) for i in range(primaries)), "the cluster is ok", timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _answers(node: redis.Redis) -> bool:
    try:
        return bool(node.ping())
    except (redis.RedisError, OSError):
        return False


def _ready(node: redis.Redis, primaries: int) -> bool:
    info = node.cluster("INFO")
    return str(info.get("cluster_state")) == "ok" and int(info.get("cluster_known_nodes", 0)) == primaries


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"local Redis Cluster: {what} not within {timeout}s")
        time.sleep(0.1)
