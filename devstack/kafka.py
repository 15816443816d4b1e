"""A single-node KRaft Kafka broker run with ``java`` from the broker's Maven Central jars.

Steps: resolve the classpath once into the cache with ``mvn dependency:copy-dependencies`` (deploy/kafka/pom.xml),
write server.properties from deploy/kafka/server.properties, format the KRaft storage, start ``kafka.Kafka``,
wait until the broker answers, create the events topic and its dead-letter topic.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from string import Template

from devstack.config import KAFKA_VERSION, PROJECT_ROOT, StackConfig
from devstack.errors import StackError
from devstack.processes import ManagedProcess
from splitstream.eventlog import EVENTS_TOPIC_CONFIGS, dead_letter_topic_for, ensure_topic

DEPLOY_DIR = PROJECT_ROOT / "deploy" / "kafka"
JVM_OPTIONS = [
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]


def broker_process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess("kafka", config.run_dir, marker="kafka.Kafka")


def _require(binary: str, hint: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise StackError(f"`{binary}` not found on PATH: {hint}")
    return path


def ensure_classpath(config: StackConfig) -> Path:
    """The broker's jars, fetched once into ``.cache/kafka-<version>/lib``."""
    lib = config.cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"
    complete = lib / ".complete"
    if complete.exists():
        return lib
    mvn = _require("mvn", "install Maven 3.8+ (Debian: apt-get install -y maven)")
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    command = [
        mvn, "-B", "-q", "-f", str(DEPLOY_DIR / "pom.xml"), f"-Dkafka.version={KAFKA_VERSION}",
        "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"fetching the Kafka broker jars failed:\n{result.stdout}\n{result.stderr}")
    if not any(staging.glob("kafka_2.13-*.jar")):
        raise StackError(f"mvn finished but no kafka_2.13 jar is in {staging}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    complete.write_text(KAFKA_VERSION + "\n")
    return lib


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _java_command(lib: Path, config_dir: Path) -> list[str]:
    java = _require("java", "install a JDK 17+ (Debian: apt-get install -y openjdk-17-jre-headless)")
    return [
        java, *JVM_OPTIONS, "-cp", f"{lib}/*", f"-Dlog4j.configuration=file:{config_dir / 'log4j.properties'}"
    ]


def _write_config(config: StackConfig, data_dir: Path) -> Path:
    config_dir = config.run_dir / "kafka"
    config_dir.mkdir(parents=True, exist_ok=True)
    template = Template((DEPLOY_DIR / "server.properties").read_text())
    properties = template.substitute(
        port=config.ports.kafka, controller_port=config.ports.kafka_controller, data_dir=data_dir
    )
    (config_dir / "server.properties").write_text(properties)
    shutil.copyfile(DEPLOY_DIR / "log4j.properties", config_dir / "log4j.properties")
    return config_dir


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(config: StackConfig, timeout: float = 90.0) -> str:
    """Start the broker unless ours already runs; returns a one-line status."""
    process = broker_process(config)
    if process.pid() is not None:
        return f"already running (pid {process.pid()})"
    if _port_open(config.ports.kafka) or _port_open(config.ports.kafka_controller):
        raise StackError(
            f"ports {config.ports.kafka}/{config.ports.kafka_controller} are taken by another program; "
            "stop it or set SPLITSTREAM_KAFKA_PORT / SPLITSTREAM_KAFKA_CONTROLLER_PORT"
        )
    lib = ensure_classpath(config)
    data_dir = config.run_dir / "kafka" / "data"
    if config.fresh_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    config_dir = _write_config(config, data_dir)
    java = _java_command(lib, config_dir)
    properties = str(config_dir / "server.properties")
    if not (data_dir / "meta.properties").exists():
        formatted = subprocess.run(
            # "--cluster-id=<id>" in one argument: a base64 id may start with "-", which argparse would otherwise
            # take for an option (one format in 64 failed that way).
            [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}", "-c", properties,
             "--ignore-formatted"],
            capture_output=True, text=True, check=False,
        )
        if formatted.returncode != 0:
            raise StackError(f"formatting KRaft storage failed:\n{formatted.stdout}\n{formatted.stderr}")
    process.log_file.parent.mkdir(parents=True, exist_ok=True)
    process.log_file.write_text("")
    process.start([*java, "kafka.Kafka", properties], env=os.environ, cwd=config.run_dir)
    _wait_ready(config, process, timeout)
    created = asyncio.run(
        ensure_topic(config.kafka_bootstrap, config.topic, config.partitions, configs=EVENTS_TOPIC_CONFIGS)
    )
    dead_letter_topic = dead_letter_topic_for(config.topic)
    asyncio.run(ensure_topic(config.kafka_bootstrap, dead_letter_topic, config.partitions))
    topic_note = "created" if created else "exists"
    return (
        f"started (pid {process.pid()}), topic {config.topic} {topic_note} with {config.partitions} partitions "
        f"(dead letters: {dead_letter_topic})"
    )


def _wait_ready(config: StackConfig, process: ManagedProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.pid() is None:
            raise StackError(f"the Kafka broker exited during start-up; its log ends:\n{process.tail()}")
        log = process.log_file.read_text(errors="replace")
        if "Kafka Server started" in log and _port_open(config.ports.kafka):
            return
        time.sleep(0.1)
    process.stop()
    raise StackError(f"the Kafka broker was not ready after {timeout:.0f}s; its log ends:\n{process.tail()}")


def stop(config: StackConfig) -> str:
    return broker_process(config).stop(timeout=30)
