"""wrk: installed from Debian when missing (as root), run with ``--latency`` and ``assign.lua``, its report parsed."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.debian import debian_binary

SCRIPT = Path(__file__).with_name("assign.lua")
THREADS = 2
CONNECTIONS = 32
TIMEOUT_SECONDS = 5
"""Past this wrk counts a request as a timeout instead of a latency; far above any p99 we expect."""

_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.MULTILINE
)


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_second: float
    requests: int
    seconds: float
    latency_seconds: dict[int, float]
    """Percentile (50, 75, 90, 99) → seconds, from wrk's latency distribution."""
    non_2xx: int
    socket_errors: int

    def latency_ms(self, percentile: int) -> float:
        return self.latency_seconds[percentile] * 1000


@dataclass(frozen=True, slots=True)
class Workload:
    """What ``assign.lua`` sends: ``pool`` users (0 = a single returning user) with ids ``{prefix}{n}``."""

    experiment: str
    pool: int
    log_exposure: bool
    prefix: str

    def script_arguments(self) -> list[str]:
        return [self.experiment, str(self.pool), "true" if self.log_exposure else "false", self.prefix]


def wrk_binary() -> str:
    return debian_binary("wrk", "wrk")


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNIT_SECONDS[unit]


def parse_report(report: str) -> WrkResult:
    """The figures of one ``wrk --latency`` report; :class:`WrkError` when any of them is missing."""
    percentiles = {int(level): _seconds(value, unit) for level, value, unit in _PERCENTILE.findall(report)}
    rate = _REQUESTS_PER_SECOND.search(report)
    total = _TOTAL.search(report)
    if rate is None or total is None or set(percentiles) != {50, 75, 90, 99}:
        raise WrkError(f"unexpected wrk report:\n{report}")
    non_2xx = _NON_2XX.search(report)
    errors = _SOCKET_ERRORS.search(report)
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        requests=int(total.group(1)),
        seconds=_seconds(total.group(2), total.group(3)),
        latency_seconds=percentiles,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(count) for count in errors.groups()) if errors else 0,
    )


def run_wrk(binary: str, url: str, workload: Workload, *, seconds: float, headers: dict[str, str]) -> WrkResult:
    argv = [
        binary, "--latency", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds:g}s",
        "--timeout", f"{TIMEOUT_SECONDS}s", "-s", str(SCRIPT),
    ]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv += [url, "--", *workload.script_arguments()]
    answer = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if answer.returncode != 0:
        raise WrkError(f"wrk exited with {answer.returncode}: {answer.stderr[-1000:]}")
    return parse_report(answer.stdout)
