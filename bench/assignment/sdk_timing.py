"""Local evaluation per call: SplitStream's ``Catalog.evaluate`` and the SDK's ``SplitStream.assign`` (which calls
it, plus its in-memory stickiness) against GrowthBook's ``GrowthBook.run`` for the same two-variant 50/50
experiment targeted at country in [CN, SG].

Both sides see the same user ids (``user-0`` … ``user-N``, each once per pass) and attributes, and log no
exposure. The SDK gets a fresh client per pass (its catalog served by an ``httpx.MockTransport``), so every call is
a first visit, as for GrowthBook, which keeps no sticky state here. ``Catalog.evaluate`` is given
``datetime.now`` per call, as the SDK must (ramps depend on it). GrowthBook's instance is reused and given each
user's pre-built attributes with ``set_attributes``, its server-side pattern for many users. growthbook is
installed on first use into .cache/bench-growthbook, a virtual environment of its own, and timed in a subprocess
there that prints JSON. Each figure is the best of ``REPEATS`` passes over ``CALLS`` calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from splitstream.evaluation import Catalog, CatalogDocument, Decision
from splitstream.experiment import Experiment, ExperimentStatus
from splitstream.sdk import SplitStream

ROOT = Path(__file__).resolve().parents[2]
GROWTHBOOK_ENV = ROOT / ".cache" / "bench-growthbook"
GROWTHBOOK_VERSION = "4.0.0"
CALLS = 200_000
REPEATS = 5
EXPERIMENT_KEY = "bench-eval"
ATTRIBUTES: dict[str, str | bool] = {"country": "CN", "device": "ios", "is_new": True, "app_version": "2.3.1"}
TARGET_COUNTRIES = ["CN", "SG"]

GROWTHBOOK_RUNNER = r"""
import json, sys, time
from importlib.metadata import version
from growthbook import Experiment, GrowthBook
params = json.load(sys.stdin)
experiment = Experiment(key=params["key"], variations=["a", "b"], weights=[0.5, 0.5],
                        condition={"country": {"$in": params["countries"]}})
attributes = [{**params["attributes"], "id": f"user-{i}"} for i in range(params["calls"])]
growthbook = GrowthBook()
def one_pass():
    began = time.perf_counter()
    for user in attributes:
        growthbook.set_attributes(user)
        growthbook.run(experiment)
    return time.perf_counter() - began
best = min(one_pass() for _ in range(params["repeats"]))
in_experiment = variant_b = 0
for user in attributes:
    growthbook.set_attributes(user)
    result = growthbook.run(experiment)
    in_experiment += bool(result.inExperiment)
    variant_b += result.value == "b"
print(json.dumps({"seconds": best, "in_experiment": in_experiment, "variant_b": variant_b,
                  "version": version("growthbook")}))
"""


@dataclass(frozen=True, slots=True)
class Timing:
    name: str
    seconds: float
    """The best pass over ``calls`` calls."""
    calls: int
    in_experiment: int
    variant_b: int
    """Sanity: a 50/50 split of targeted users puts about half of them in each variant."""

    @property
    def micros_per_call(self) -> float:
        return self.seconds / self.calls * 1e6


def experiment_spec(key: str) -> dict[str, Any]:
    """The benchmark's experiment as the admin API takes it: two variants at 0.5 each, targeted by country."""
    return {
        "key": key,
        "name": "assignment benchmark",
        "variants": [
            {"key": "a", "weight": 0.5, "payload": {"title": "Variant A"}},
            {"key": "b", "weight": 0.5, "payload": {"title": "Variant B"}},
        ],
        "targeting": [{"attribute": "country", "op": "in", "value": TARGET_COUNTRIES}],
    }


def user_ids(calls: int) -> list[str]:
    return [f"user-{index}" for index in range(calls)]


def best_pass(evaluate: Callable[[str], object], users: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for user in users:
            evaluate(user)
        best = min(best, time.perf_counter() - began)
    return best


def running_experiment() -> Experiment:
    return Experiment.model_validate({
        **experiment_spec(EXPERIMENT_KEY), "status": ExperimentStatus.RUNNING, "salt": EXPERIMENT_KEY,
        "created_at": datetime.now(UTC),
    })


def time_catalog(calls: int = CALLS, repeats: int = REPEATS) -> Timing:
    evaluate = Catalog.of([running_experiment()]).evaluate

    def one_call(user: str) -> Decision:
        return evaluate(EXPERIMENT_KEY, user, ATTRIBUTES, datetime.now(UTC))

    users = user_ids(calls)
    seconds = best_pass(one_call, users, repeats)
    decisions = [one_call(user) for user in users]
    return Timing(
        "Catalog.evaluate", seconds, calls, sum(decision.in_experiment for decision in decisions),
        sum(decision.variant == "b" for decision in decisions),
    )


def _sdk_client() -> SplitStream:
    document = CatalogDocument(experiments=[running_experiment()])
    body = document.model_dump_json().encode()

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/config":
            return httpx.Response(200, content=body, headers={"etag": document.etag()})
        return httpx.Response(404)

    return SplitStream(
        "http://assignment.invalid", "http://collector.invalid", "bench-key", transport=httpx.MockTransport(serve),
        background=False,
    )


def time_sdk(calls: int = CALLS, repeats: int = REPEATS) -> Timing:
    users = user_ids(calls)
    best = float("inf")
    for _ in range(repeats):
        with _sdk_client() as client:
            best = min(best, best_pass(partial(client.assign, attributes=ATTRIBUTES, experiment=EXPERIMENT_KEY),
                                       users, 1))
    with _sdk_client() as client:
        assignments = [client.assign(user, ATTRIBUTES, experiment=EXPERIMENT_KEY) for user in users]
    return Timing(
        "SplitStream.assign (SDK)", best, calls, sum(assignment.in_experiment for assignment in assignments),
        sum(assignment.variant == "b" for assignment in assignments),
    )


def isolated_python(env_dir: Path, package: str, version: str) -> Path:
    """The interpreter of a virtual environment holding ``package==version`` (created and installed when not)."""
    python = env_dir / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    installed = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"],
        capture_output=True, text=True, check=False,
    )
    if installed.stdout.strip() != version:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{package}=={version}"], check=True)
    return python


def time_growthbook(calls: int = CALLS, repeats: int = REPEATS) -> Timing:
    params = {"key": EXPERIMENT_KEY, "countries": TARGET_COUNTRIES, "attributes": ATTRIBUTES, "calls": calls,
              "repeats": repeats}
    answer = subprocess.run(
        [str(isolated_python(GROWTHBOOK_ENV, "growthbook", GROWTHBOOK_VERSION)), "-c", GROWTHBOOK_RUNNER],
        input=json.dumps(params), capture_output=True, text=True, check=True,
    )
    parsed = json.loads(answer.stdout)
    return Timing(
        f"GrowthBook.run (growthbook {parsed['version']})", parsed["seconds"], calls, parsed["in_experiment"],
        parsed["variant_b"],
    )
