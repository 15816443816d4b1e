"""CPU time a process used during a measurement, from ``/proc/<pid>/stat`` (Linux; elsewhere nothing is read).

On a small machine every process of the stack shares the cores: a service's rate under load says as much about its
neighbours as about itself. The CPU it spent per event or request does not, and its inverse is the rate the
service would reach with a core of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_UTIME, _STIME = 11, 12
"""Fields 14 and 15 of ``proc_pid_stat(5)``, counted after the parenthesised command name."""


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds ``pid`` has used so far, or None when it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after its last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[_UTIME]) + int(fields[_STIME])) / _TICKS_PER_SECOND


@dataclass(frozen=True, slots=True)
class CpuUse:
    """What one process spent on ``work`` units (events, requests) over ``wall_seconds``."""

    cpu: float
    wall_seconds: float
    work: int

    @property
    def cores(self) -> float:
        return self.cpu / self.wall_seconds

    @property
    def micros_per_unit(self) -> float:
        return self.cpu / self.work * 1e6

    @property
    def units_per_cpu_second(self) -> float:
        return self.work / self.cpu

    def describe(self, unit: str) -> str:
        return (f"{self.cores:.2f} cores on average, {self.micros_per_unit:.1f} µs of CPU per {unit}: "
                f"{self.units_per_cpu_second:,.0f} {unit}s per CPU-second")


class CpuMeter:
    """Reads ``pid``'s CPU time at ``start`` and at ``stop``; a process that cannot be read measures as None."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._started: float | None = None

    def start(self) -> None:
        self._started = None if self._pid is None else cpu_seconds(self._pid)

    def stop(self, wall_seconds: float, work: int) -> CpuUse | None:
        if self._pid is None or self._started is None or wall_seconds <= 0 or work <= 0:
            return None
        now = cpu_seconds(self._pid)
        if now is None or now <= self._started:
            return None
        return CpuUse(now - self._started, wall_seconds, work)
