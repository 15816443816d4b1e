"""How long a full readout takes from sufficient statistics: 5 variants × 10 metrics × 10 segment values.

Runs SplitStream's engine in this process and gbstats 0.8.0 (installed on first use into .cache/bench-gbstats, a
virtual environment of its own) on the same inputs, and prints both timings and their ratio:

    .venv/bin/python -m bench.stats.readout
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from services.analyzer.stats.batch import compare_batch
from services.analyzer.stats.frequentist import compare
from splitstream.statistics import Proportion, SampleMoments

ROOT = Path(__file__).resolve().parents[2]
GBSTATS_ENV = ROOT / ".cache" / "bench-gbstats"
VARIANTS, METRICS, SEGMENTS = 5, 10, 10
REPEATS = 7

GBSTATS_RUNNER = r"""
import json, sys, time, statistics
from gbstats.frequentist.tests import TwoSidedTTest, FrequentistConfig
from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic
cells, repeats = json.load(sys.stdin), int(sys.argv[1])
def stat(arm):
    if arm["kind"] == "binomial":
        return ProportionStatistic(n=arm["n"], sum=float(arm["sum"]))
    return SampleMeanStatistic(n=arm["n"], sum=arm["sum"], sum_squares=arm["sum_squares"])
timings, results = [], []
for _ in range(repeats):
    began = time.perf_counter()
    results = []
    for control, treatment in cells:
        for kind in ("relative", "absolute"):
            test = TwoSidedTTest(stat(control), stat(treatment), FrequentistConfig(difference_type=kind))
            result = test.compute_result()
            results.append([result.expected, result.p_value])
    timings.append(time.perf_counter() - began)
print(json.dumps({"seconds": statistics.median(timings), "results": results}))
"""


def build_cells(seed: int = 1) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (control, treatment) pair of the readout, as plain sufficient statistics."""
    rng = np.random.default_rng(seed)
    cells: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for metric in range(METRICS):
        binomial = metric % 2 == 0
        for _segment in range(SEGMENTS):
            arms = []
            for _variant in range(VARIANTS):
                n = int(rng.integers(2_000, 50_000))
                if binomial:
                    arms.append({"kind": "binomial", "n": n, "sum": int(rng.binomial(n, 0.1))})
                else:
                    values = rng.exponential(20.0, size=n) * (rng.random(n) < 0.3)
                    arms.append({"kind": "mean", "n": n, "sum": float(values.sum()),
                                 "sum_squares": float((values * values).sum())})
            cells.extend((arms[0], treatment) for treatment in arms[1:])
    return cells


def _arm(cell: dict[str, Any]) -> Proportion | SampleMoments:
    if cell["kind"] == "binomial":
        return Proportion(cell["n"], cell["sum"])
    return SampleMoments(cell["n"], cell["sum"], cell["sum_squares"])


def time_splitstream(
    cells: list[tuple[dict[str, Any], dict[str, Any]]], *, vectorised: bool
) -> tuple[float, list[list[float | None]]]:
    """The readout from sufficient statistics: arms are built inside the timing, as the analyzer must."""
    timings: list[float] = []
    results: list[list[float | None]] = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        arms = [(_arm(control), _arm(treatment)) for control, treatment in cells]
        outcomes = compare_batch(arms) if vectorised else [compare(control, treatment) for control, treatment in arms]
        results = []
        for outcome in outcomes:
            results.append([outcome.relative.effect, outcome.relative.p_value])
            results.append([outcome.absolute.effect, outcome.absolute.p_value])
        timings.append(time.perf_counter() - began)
    return statistics.median(timings), results


def _gbstats_python() -> Path:
    python = GBSTATS_ENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(GBSTATS_ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "gbstats==0.8.0"], check=True)
    return python


def time_gbstats(cells: list[tuple[dict[str, Any], dict[str, Any]]]) -> tuple[float, list[list[float]]]:
    answer = subprocess.run(
        [str(_gbstats_python()), "-c", GBSTATS_RUNNER, str(REPEATS)],
        input=json.dumps(cells), capture_output=True, text=True, check=True,
    )
    parsed = json.loads(answer.stdout)
    return parsed["seconds"], parsed["results"]


def main() -> None:
    cells = build_cells()
    comparisons = len(cells) * 2
    ours, our_results = time_splitstream(cells, vectorised=True)
    scalar, _ = time_splitstream(cells, vectorised=False)
    theirs, their_results = time_gbstats(cells)
    agree = sum(
        1 for a, b in zip(our_results, their_results, strict=True)
        if a[0] is not None and abs(a[0] - b[0]) <= 1e-9 * max(1.0, abs(b[0]))
    )
    print(f"readout: {VARIANTS} variants x {METRICS} metrics x {SEGMENTS} segment values = "
          f"{len(cells)} treatment-control pairs, {comparisons} comparisons (relative and absolute)")
    print(f"splitstream engine: {ours * 1000:8.1f} ms   (median of {REPEATS}; compare_batch)")
    print(f"  scalar baseline:  {scalar * 1000:8.1f} ms   (one compare() per pair, same process)")
    print(f"gbstats 0.8.0:      {theirs * 1000:8.1f} ms   (median of {REPEATS}, same inputs)")
    print(f"speed-up over gbstats: {theirs / ours:.1f}x; point estimates agreeing to 1e-9: {agree}/{comparisons}")


if __name__ == "__main__":
    main()
