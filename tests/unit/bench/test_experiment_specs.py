"""The benchmarks create their experiments through the admin API: their definitions must be valid ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bench.assignment import sdk_timing
from bench.ingest import aggregation, freshness
from splitstream.experiment import ExperimentSpec

SPECS: dict[str, Callable[[], dict[str, Any]]] = {
    "ingest aggregation": lambda: aggregation.experiment_spec("bench-agg", "run1"),
    "ingest freshness": lambda: freshness.experiment_spec("bench-fresh", "run1"),
    "assignment sdk timing": lambda: sdk_timing.experiment_spec("bench-sdk"),
}


@pytest.mark.parametrize("name", SPECS)
def test_every_benchmark_experiment_is_a_valid_definition(name: str) -> None:
    spec = ExperimentSpec.model_validate(SPECS[name]())  # raises on what the admin API would refuse with a 422

    assert sum(variant.weight or 0.0 for variant in spec.variants) == pytest.approx(1.0)
