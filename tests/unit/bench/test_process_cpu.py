"""CPU accounting of the benchmarks: read from /proc, turned into per-unit figures."""

from __future__ import annotations

import os
import sys
import time

import pytest

from bench.process_cpu import CpuMeter, CpuUse, cpu_seconds

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _spin(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


@linux_only
def test_a_busy_process_is_seen_spending_its_cpu() -> None:
    meter = CpuMeter(os.getpid())
    meter.start()
    _spin(0.3)
    use = meter.stop(wall_seconds=0.3, work=1000)
    assert use is not None
    # /proc counts in clock ticks (10 ms here): the 0.3 s spent shows within a tick or two.
    assert 0.25 <= use.cpu <= 0.5


def test_per_unit_figures() -> None:
    use = CpuUse(cpu=0.6, wall_seconds=1.2, work=50_000)
    assert use.cores == pytest.approx(0.5)
    assert use.micros_per_unit == pytest.approx(12.0)
    assert use.units_per_cpu_second == pytest.approx(83_333.33, rel=1e-6)
    assert use.describe("event") == (
        "0.50 cores on average, 12.0 µs of CPU per event: 83,333 events per CPU-second"
    )


def test_an_unknown_process_measures_as_nothing() -> None:
    missing = CpuMeter(None)
    missing.start()
    assert missing.stop(wall_seconds=1.0, work=10) is None
    assert cpu_seconds(2**22 + 12345) is None  # above Linux's largest pid
