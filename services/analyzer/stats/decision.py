"""From results to a call an operations lead can act on: ship, roll back, keep running, proved neutral, invalid.

The rules, in order (the first that applies decides; every rule that fired is listed in ``reasons``):

1. **invalid** — the sample-ratio check failed: users are not split as configured, so every comparison is suspect.
2. **keep running** — fewer users or days than the policy's minimum: early results are noisy, and weekly cycles
   are not yet covered.
3. **roll back** — the goal metric is significantly worse (its CI lies wholly on the harmful side of 0), or a
   guardrail is harmed beyond its margin with significance (CI wholly harmful and the estimate past the margin).
4. **ship** — the goal metric is significantly better and no guardrail blocks it.
5. **proved neutral** — the goal metric's equivalence test (TOST) shows the effect lies within the margin.
6. **keep running** — otherwise: the data cannot yet tell a win, a loss or a tie apart.

Effects are read on their natural scale (relative lift by default); ``higher_is_better`` flips the direction
for metrics such as churn or latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from services.analyzer.stats.results import Comparison, SrmResult, Status


class Verdict(StrEnum):
    SHIP = "ship"
    ROLL_BACK = "roll_back"
    KEEP_RUNNING = "keep_running"
    PROVED_NEUTRAL = "proved_neutral"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class MetricReading:
    """One metric's comparison of the treatment against the control, and which direction is good."""

    key: str
    comparison: Comparison
    higher_is_better: bool = True
    margin: float = 0.0
    """For a guardrail: the harm it tolerates, on the comparison's scale (e.g. 0.02 = 2% relative)."""
    equivalent: bool | None = None
    """For the goal: the TOST outcome against the policy's equivalence margin, when it was computed."""


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    min_users_per_variant: int = 1000
    min_days: float = 7.0

    def __post_init__(self) -> None:
        if self.min_users_per_variant < 0 or self.min_days < 0:
            raise ValueError("minimums must be non-negative")


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)


def _signed(reading: MetricReading) -> tuple[float, float, float] | None:
    """(estimate, lower, upper) oriented so that positive is good; None when the comparison has no interval."""
    c = reading.comparison
    if c.status is not Status.OK or c.effect is None or c.ci_lower is None or c.ci_upper is None:
        return None
    if reading.higher_is_better:
        return c.effect, c.ci_lower, c.ci_upper
    return -c.effect, -c.ci_upper, -c.ci_lower


def _describe(reading: MetricReading) -> str:
    c = reading.comparison
    if c.effect is None or c.ci_lower is None or c.ci_upper is None:
        return f"{reading.key}: {c.reason or c.status.value}"
    return f"{reading.key}: {c.effect:+.2%} [{c.ci_lower:+.2%}, {c.ci_upper:+.2%}]"


def harmed(effect: float, ci_upper_good: float, margin: float) -> bool:
    """Oriented so that positive is good: the interval lies wholly on the harmful side and the estimate is past the
    tolerated ``margin``."""
    return ci_upper_good < 0 and effect < -margin


def _guardrail_harm(reading: MetricReading) -> str | None:
    signed = _signed(reading)
    if signed is None:
        return None
    estimate, _, upper = signed
    if harmed(estimate, upper, reading.margin):
        return f"guardrail {_describe(reading)} is harmed beyond its {reading.margin:.2%} margin"
    return None


def decide(
    goal: MetricReading,
    guardrails: Sequence[MetricReading],
    srm: SrmResult,
    *,
    users_per_variant: Sequence[int],
    days_running: float,
    policy: DecisionPolicy | None = None,
) -> Decision:
    """Apply the rules of the module docstring to one treatment against the control."""
    policy = policy or DecisionPolicy()
    if days_running < 0 or any(users < 0 for users in users_per_variant):
        raise ValueError("days_running and users_per_variant must be non-negative")
    if srm.status is Status.MISMATCH:
        return Decision(Verdict.INVALID, [f"sample ratio mismatch (p = {srm.p_value:.2g}): {srm.reason or ''}".strip()])
    waiting = []
    fewest = min(users_per_variant, default=0)
    if fewest < policy.min_users_per_variant:
        waiting.append(f"{fewest} users in the smallest variant; the policy needs {policy.min_users_per_variant}")
    if days_running < policy.min_days:
        waiting.append(f"running {days_running:.1f} days; the policy needs {policy.min_days:g}")
    if waiting:
        return Decision(Verdict.KEEP_RUNNING, waiting)

    harms = [harm for harm in map(_guardrail_harm, guardrails) if harm]
    signed = _signed(goal)
    if signed is not None and signed[2] < 0:
        return Decision(Verdict.ROLL_BACK, [f"goal {_describe(goal)} is significantly worse", *harms])
    if harms:
        return Decision(Verdict.ROLL_BACK, harms)
    if signed is not None and signed[1] > 0:
        return Decision(Verdict.SHIP, [f"goal {_describe(goal)} is significantly better; no guardrail harmed"])
    if goal.equivalent:
        return Decision(Verdict.PROVED_NEUTRAL, [f"goal {_describe(goal)} lies within the equivalence margin"])
    return Decision(Verdict.KEEP_RUNNING, [f"goal {_describe(goal)} is not yet conclusive"])
