"""Group-sequential looks (plan method ``group_sequential``): when one is due, what is recorded, how it is read.

The plan schedules K = ``looks`` looks evenly spaced in information over the horizon N = ``planned_users_per_variant``:
the k-th scheduled threshold is reached when the smallest variant has n_min ≥ k·N/K users, i.e. when
⌊K·n_min/N⌋ ≥ k (integer arithmetic, so a threshold is never missed or anticipated by rounding). A results request
that finds the smallest variant past the next threshold records ONE look at the current data with its actual
information fraction t = n_min/N, even if several thresholds were crossed since the last request: Lan–DeMets
spending only needs the fractions actually observed (``stats.sequential``).

A look record keeps, per metric × treatment and on both scales, the fixed-horizon estimate Δ̂_k and its standard
error SE_k at that moment, so that every later read reproduces the test made at that look:
``group_sequential_test(Δ̂_k, SE_k, (t_1, …, t_k), α)``, which rejects H0 iff |Δ̂_k/SE_k| ≥ c_k, the repeated
interval being Δ̂_k ± c_k·SE_k (Jennison & Turnbull 1989). The look ordinal k (the k-th look recorded) is what the
spending counts; ``threshold`` records which scheduled threshold the look answered.

The test is over once the goal metric's relative comparison of some treatment crossed its boundary (the call is
made on the goal): no further look is recorded, and reads keep reporting the rejecting look. Without a goal metric
looks are recorded up to the planned horizon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.analyzer.reading import Reading
from services.analyzer.stats import Comparison, EffectKind, GroupSequentialResult, Method, Status, TreatmentComparison
from services.analyzer.stats.sequential import group_sequential_test, obrien_fleming_alpha_spent, unusable_reason
from splitstream.experiment import AnalysisPlan

Cell = tuple[str, str]
"""(metric key, treatment variant key)."""


class LookEstimate(BaseModel):
    """Δ̂ and SE of one comparison at a look; when the normal approximation was not usable then, why not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Status
    reason: str | None = None
    effect: float | None = None
    std_error: float | None = None

    @classmethod
    def of(cls, comparison: Comparison) -> LookEstimate:
        reason = unusable_reason(comparison)
        if reason is None:
            return cls(status=Status.OK, effect=comparison.effect, std_error=comparison.std_error)
        status = comparison.status if comparison.status is not Status.OK else Status.UNDEFINED
        return cls(status=status, reason=reason, effect=comparison.effect)


class LookCell(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    variant: str
    relative: LookEstimate
    absolute: LookEstimate


class LookRecord(BaseModel):
    """One recorded look (stored as JSON in the ``RedisKeys.looks`` list, oldest first)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    look: int = Field(ge=1, description="ordinal: the k-th look recorded")
    threshold: int = Field(ge=1, description="the highest scheduled threshold k/looks of the horizon reached")
    users: dict[str, int] = Field(description="exposed users per variant at the look")
    planned_users_per_variant: int = Field(gt=0)
    information_fraction: float = Field(gt=0, allow_inf_nan=False, description="t = min(users) / planned")
    recorded_at: datetime
    cells: list[LookCell] = Field(description="every metric × treatment whose statistics were consistent")

    def cell(self, metric: str, variant: str) -> LookCell | None:
        return next((c for c in self.cells if c.metric == metric and c.variant == variant), None)


def _horizon(plan: AnalysisPlan) -> int:
    if plan.planned_users_per_variant is None:
        raise ValueError("a group-sequential plan needs planned_users_per_variant")
    return plan.planned_users_per_variant


def first_look_users(plan: AnalysisPlan) -> int:
    """⌈N/K⌉: the users the smallest variant needs for the first scheduled look."""
    return -(-_horizon(plan) // plan.looks)


def thresholds_reached(smallest_variant_users: int, plan: AnalysisPlan) -> int:
    """How many scheduled thresholds n_min has reached: ⌊K·n_min/N⌋, between 0 and K."""
    return max(0, min(plan.looks, plan.looks * smallest_variant_users // _horizon(plan)))


def due_threshold(recorded: Sequence[LookRecord], users: Mapping[str, int], plan: AnalysisPlan) -> int | None:
    """The threshold a new look would answer, or None when no scheduled threshold was crossed since the last look."""
    reached = thresholds_reached(min(users.values(), default=0), plan)
    last = recorded[-1].threshold if recorded else 0
    return reached if reached > last else None


def build_look(
    recorded: Sequence[LookRecord],
    users: Mapping[str, int],
    plan: AnalysisPlan,
    threshold: int,
    comparisons: Mapping[Cell, TreatmentComparison],
    now: datetime,
) -> LookRecord:
    """The next look at the current data: its estimates are the fixed-horizon comparisons of this moment."""
    horizon = _horizon(plan)
    return LookRecord(
        look=len(recorded) + 1,
        threshold=threshold,
        users=dict(users),
        planned_users_per_variant=horizon,
        information_fraction=min(users.values()) / horizon,
        recorded_at=now,
        cells=[
            LookCell(metric=metric, variant=variant, relative=LookEstimate.of(fixed.relative),
                     absolute=LookEstimate.of(fixed.absolute))
            for (metric, variant), fixed in comparisons.items()
        ],
    )


def _test(estimate: LookEstimate | None, fractions: Sequence[float], alpha: float, kind: EffectKind,
          look: int) -> GroupSequentialResult:
    t = fractions[-1]
    if estimate is None:
        return GroupSequentialResult(kind, Status.UNDEFINED, f"no estimate of this comparison was recorded at look "
                                     f"{look}", look, t, obrien_fleming_alpha_spent(t, alpha))
    if estimate.status is not Status.OK or estimate.effect is None or estimate.std_error is None:
        return GroupSequentialResult(kind, estimate.status, estimate.reason, look, t,
                                     obrien_fleming_alpha_spent(t, alpha), effect=estimate.effect)
    return group_sequential_test(estimate.effect, estimate.std_error, fractions, alpha, kind)


def _comparison(result: GroupSequentialResult) -> Comparison:
    # No p-value: a group-sequential design has no single-look p-value comparable to alpha. The nominal level
    # 2Φ̄(c_k) is summarised by ``boundary``; a stage-wise ordered p-value is only defined where the test stops.
    return Comparison(
        kind=result.kind, method=Method.GROUP_SEQUENTIAL, status=result.status, reason=result.reason,
        effect=result.effect, ci_lower=result.ci_lower, ci_upper=result.ci_upper, p_value=None,
        std_error=result.std_error, statistic=result.statistic,
    )


def read_at_latest_look(recorded: Sequence[LookRecord], metric: str, variant: str, alpha: float) -> Reading:
    """The comparison as tested at the latest recorded look, with the fractions of every look so far."""
    if not recorded:
        raise ValueError("no look recorded yet")
    latest = recorded[-1]
    fractions = [record.information_fraction for record in recorded]
    cell = latest.cell(metric, variant)
    relative = _test(None if cell is None else cell.relative, fractions, alpha, EffectKind.RELATIVE, latest.look)
    absolute = _test(None if cell is None else cell.absolute, fractions, alpha, EffectKind.ABSOLUTE, latest.look)
    return Reading(_comparison(relative), _comparison(absolute), group_sequential=relative)


def before_first_look(plan: AnalysisPlan, kind: EffectKind, smallest_variant_users: int) -> Comparison:
    return Comparison(
        kind=kind, method=Method.GROUP_SEQUENTIAL, status=Status.INSUFFICIENT_DATA,
        reason=f"first scheduled look at {first_look_users(plan)} users per variant "
               f"(the smallest variant has {smallest_variant_users})",
    )


def waiting_reading(plan: AnalysisPlan, smallest_variant_users: int) -> Reading:
    """What every comparison reads before the first look: nothing yet."""
    return Reading(before_first_look(plan, EffectKind.RELATIVE, smallest_variant_users),
                   before_first_look(plan, EffectKind.ABSOLUTE, smallest_variant_users))


def goal_rejected(recorded: Sequence[LookRecord], goal: str | None, alpha: float) -> bool:
    """Whether the latest look crossed the boundary on the goal metric for some treatment: the test is over."""
    if goal is None or not recorded:
        return False
    latest = recorded[-1]
    fractions = [record.information_fraction for record in recorded]
    return any(
        _test(cell.relative, fractions, alpha, EffectKind.RELATIVE, latest.look).reject
        for cell in latest.cells if cell.metric == goal
    )
