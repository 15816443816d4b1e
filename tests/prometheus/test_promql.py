"""A real Prometheus (Debian's package) scrapes the running analyzer; an experiment's effect comes back by PromQL."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings
from splitstream.experiment import Metric, MetricType
from tests.conftest import auth
from tests.debian import debian_binary
from tests.live_server import serving
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

WAIT_SECONDS = 60
CONVERTED = Metric(key="converted", type=MetricType.BINOMIAL, event="purchase")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_prometheus(target: str, directory: Path) -> Iterator[str]:
    """Prometheus scraping ``target`` (host:port) every second, with its data in ``directory``; its base URL."""
    binary = debian_binary("prometheus", "prometheus")
    config = directory / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: analyzer\n    static_configs: [{{targets: ['{target}']}}]\n",
        encoding="utf-8",
    )
    address = f"127.0.0.1:{_free_port()}"
    with (directory / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address={address}"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        try:
            yield f"http://{address}"
        finally:
            process.terminate()
            process.wait(timeout=20)


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _eventually(url: str, promql: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            found = _query(url, promql)
        except httpx.HTTPError:
            found = []  # not up yet
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


async def test_prometheus_reads_the_experiments_effect_back_with_promql(
    settings: AnalyzerSettings, create_experiment: CreateExperiment, write_stats: WriteStats, tmp_path: Path
) -> None:
    await create_experiment("promql-checkout", [("control", 1), ("treatment", 1)], [CONVERTED])
    await write_stats("promql-checkout", "control", {"users": 10_000, "converted:sum": 1_000,
                                                     "converted:sumsq": 1_000})
    await write_stats("promql-checkout", "treatment", {"users": 10_000, "converted:sum": 1_150,
                                                       "converted:sumsq": 1_150})
    app = create_app(settings.model_copy(update={"gauge_refresh_seconds": 0.5, "snapshot_interval_seconds": 0}))

    def read_back() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        # Blocking on purpose, in a thread: the analyzer and Prometheus run outside this event loop.
        with serving(app, "analyzer-for-prometheus") as analyzer:
            results = httpx.get(f"{analyzer}/v1/experiments/promql-checkout/results", headers=auth("read")).json()
            with running_prometheus(analyzer.removeprefix("http://"), tmp_path) as prometheus:
                return (
                    results,
                    _eventually(prometheus, 'splitstream_effect{experiment="promql-checkout",metric="converted"}'),
                    _eventually(prometheus, 'splitstream_effect_ci_upper{experiment="promql-checkout"}'),
                    _eventually(prometheus, 'sum(splitstream_users{experiment="promql-checkout"})'),
                )

    results, effect, upper, users = await asyncio.to_thread(read_back)

    assert effect, (tmp_path / "prometheus.log").read_text()[-2000:]
    [comparison] = results["metrics"][0]["comparisons"]
    [sample] = effect
    assert sample["metric"]["variant"] == "treatment"
    assert float(sample["value"][1]) == pytest.approx(comparison["effect"], rel=1e-9)
    assert float(upper[0]["value"][1]) == pytest.approx(comparison["ci_upper"], rel=1e-9)
    assert float(users[0]["value"][1]) == 20_000
