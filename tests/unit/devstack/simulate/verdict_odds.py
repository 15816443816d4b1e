"""The chance that the analyzer makes a scenario's intended call at the default number of users, from the scenario's
own model: no HTTP, no stored numbers.

1. Simulate the default population (a fixed seed) under every arm, each user's events read as the analyzer's fold
   reads them: binomial 0/1, mean the (capped) total of the values, ratio (Σm, count or total of d); CUPED's
   covariate x is the same metric over the pre-period events (binomial: any; mean: the capped total).
2. Rescale each arm's sums to the users it expects: ``users × (1 − holdout share) × weight`` (means and unit
   variances unchanged), and hand them to the engine (``services.analyzer.stats.estimators.estimate``, the
   fixed-horizon comparison the calls are made on): its standard error SE and Welch ν of the relative lift.
3. Take the estimate as Δ̂ ~ N(Δ, SE²) around the scenario's stated true lift Δ (normal approximation), with the
   engine's critical value c = t_ν(1 − α/2):

   - significantly better:  P(Δ̂ − c·SE > 0) = Φ(Δ/SE − c); worse mirrored;
   - guardrail harmed (oriented so positive is good, s = ±1): s·Δ̂ < min(−margin, −c·SE);
   - proved neutral: TOST at the 1 − 2α level and no significant difference (decide() checks significance
     first): |Δ̂| < min(c·SE, margin − t_ν(1 − α)·SE).

4. Combine them into the verdict by the decision's rules with Bonferroni bounds, valid whatever the correlation
   of the readings: P(A and not B) ≥ P(A) − P(B), P(A and B) ≥ P(A) + P(B) − 1; subtract the chance of a
   sample-ratio false alarm (the analyzer's threshold) and of an arm short of the plan's minimum users (binomial
   count, normal approximation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from devstack.simulate.scenario import (
    POOLED_ARM,
    Action,
    ExpectedVerdict,
    Scenario,
    VerdictCause,
    response,
    simulated_user,
)
from services.analyzer.stats import DEFAULT_SRM_THRESHOLD, Status
from services.analyzer.stats.estimators import Statistic, estimate
from splitstream.experiment import HOLDOUT_ARM, ExperimentSpec, Metric, MetricRole, MetricType
from splitstream.statistics import CovariateMoments, Proportion, RatioMoments, SampleMoments

EXPERIMENT_KEY = "odds-20260302-101500"


@dataclass(frozen=True, slots=True)
class ExpectedReading:
    """One metric × treatment at the expected sample: the true relative lift, the engine's SE of its estimate and
    Welch's ν (None: normal)."""

    metric: Metric
    lift: float
    std_error: float
    dof: float | None

    def quantile(self, probability: float) -> float:
        return float(stats.norm.ppf(probability) if self.dof is None else stats.t(self.dof).ppf(probability))

    def _between(self, low: float, high: float) -> float:
        """P(low < Δ̂ < high) under Δ̂ ~ N(lift, SE²)."""
        if high <= low:
            return 0.0
        upper = stats.norm.cdf((high - self.lift) / self.std_error)
        lower = stats.norm.cdf((low - self.lift) / self.std_error)
        return float(upper - lower)

    def significant(self, alpha: float, better: bool) -> float:
        """P(the 1 − α interval lies wholly on the good (``better``) or the harmful side of 0)."""
        bound = self.quantile(1 - alpha / 2) * self.std_error
        good_is_up = self.metric.higher_is_better == better
        return self._between(bound, math.inf) if good_is_up else self._between(-math.inf, -bound)

    def harmed(self, alpha: float) -> float:
        """P(a guardrail is harmed beyond its margin: interval wholly harmful and estimate past the margin)."""
        threshold = max(self.metric.margin, self.quantile(1 - alpha / 2) * self.std_error)
        return self._between(threshold, math.inf) if not self.metric.higher_is_better \
            else self._between(-math.inf, -threshold)

    def proved_neutral(self, alpha: float, margin: float) -> float:
        """P(TOST within ±margin and the two-sided test not significant)."""
        half_width = min(self.quantile(1 - alpha / 2) * self.std_error,
                         margin - self.quantile(1 - alpha) * self.std_error)
        return self._between(-half_width, half_width)


def _total(actions: Sequence[Action], event: str) -> float:
    return math.fsum(1.0 if action.value is None else action.value for action in actions if action.name == event)


def _count(actions: Sequence[Action], event: str) -> float:
    return float(sum(action.name == event for action in actions))


def user_value(metric: Metric, actions: Sequence[Action]) -> tuple[float, float]:
    """One user's (y, d) for ``metric`` as the fold keeps them: d is the ratio's denominator, 1 otherwise."""
    if metric.type is MetricType.BINOMIAL:
        return float(any(action.name == metric.event for action in actions)), 1.0
    total = _total(actions, metric.event)
    if metric.type is MetricType.MEAN:
        return (total if metric.cap is None else min(total, metric.cap)), 1.0
    assert metric.denominator_event is not None
    aggregate = _total if metric.denominator_aggregate.value == "sum" else _count
    return total, aggregate(actions, metric.denominator_event)


@dataclass(frozen=True, slots=True)
class _Sums:
    """An arm's sums of y, d (ratio denominator) and x (CUPED covariate) over ``users`` (possibly rescaled)."""

    users: float = 0.0
    y: float = 0.0
    yy: float = 0.0
    d: float = 0.0
    dd: float = 0.0
    yd: float = 0.0
    x: float = 0.0
    xx: float = 0.0
    xy: float = 0.0

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(*(mine + theirs for mine, theirs in zip(self._fields(), other._fields(), strict=True)))

    def _fields(self) -> tuple[float, ...]:
        return (self.users, self.y, self.yy, self.d, self.dd, self.yd, self.x, self.xx, self.xy)

    @classmethod
    def of(cls, values: Sequence[tuple[float, float, float]]) -> _Sums:
        """From each user's (y, d, x)."""
        return cls(len(values), *(math.fsum(terms) for terms in zip(
            *((y, y * y, d, d * d, y * d, x, x * x, x * y) for y, d, x in values), strict=True)))

    def rescaled(self, users: float) -> _Sums:
        """The sums of ``users`` users like these (means and unit variances kept)."""
        k = users / self.users
        return _Sums(users, *(k * value for value in self._fields()[1:]))

    def statistic(self, metric: Metric, cuped: bool) -> Statistic:
        n = round(self.users)
        if metric.type is MetricType.RATIO:
            return RatioMoments(n, self.y, self.yy, self.d, self.dd, self.yd)
        if cuped:
            return CovariateMoments(n, self.y, self.yy, self.x, self.xx, self.xy)
        if metric.type is MetricType.BINOMIAL:
            return Proportion(n, round(self.y))
        return SampleMoments(n, self.y, self.yy)




def _in_lookback(spec: ExperimentSpec, pre_period: Sequence[Action]) -> list[Action]:
    """Pre-period events inside CUPED's lookback: whole UTC days before the exposure's day, of which those younger
    than the lookback in days are surely part."""
    lookback = spec.analysis.cuped_lookback_days
    return [action for action in pre_period if -action.offset.total_seconds() < lookback * 86400]


def arm_users(scenario: Scenario, spec: ExperimentSpec, users: int) -> dict[str, float]:
    """Expected users per arm: variants share ``1 − holdout share`` by weight; the holdout arm has the rest."""
    held = scenario.holdout_share or 0.0
    weights = [variant.weight or 1 / len(spec.variants) for variant in spec.variants]
    arms = {variant.key: users * (1 - held) * weight for variant, weight in zip(spec.variants, weights, strict=True)}
    return {**arms, HOLDOUT_ARM: users * held} if held else arms


def expected_readings(scenario: Scenario, users: int, seed: int) -> dict[tuple[str, str, str], ExpectedReading]:
    """Each of the scenario's true effects as the engine would read it at the expected arm sizes of ``users``,
    keyed by (metric, variant, baseline); the pool of all variants is their sums added."""
    spec = ExperimentSpec.model_validate(scenario.definition(EXPERIMENT_KEY))
    variants = [variant.key for variant in spec.variants]
    sizes = arm_users(scenario, spec, users)
    values: dict[tuple[str, str], list[tuple[float, float, float]]] = {
        (metric.key, arm): [] for metric in spec.metrics for arm in sizes}
    for index in range(users):
        user = simulated_user(scenario, seed, EXPERIMENT_KEY, index)
        before = _in_lookback(spec, user.pre_period)
        for arm in sizes:
            # Held-out users are shown nothing: the model's response to no variant.
            actions = response(scenario, seed, user, None if arm == HOLDOUT_ARM else arm)
            for metric in spec.metrics:
                values[(metric.key, arm)].append((*user_value(metric, actions), user_value(metric, before)[0]))
    sums = {cell: _Sums.of(cell_values).rescaled(sizes[cell[1]]) for cell, cell_values in values.items()}
    for metric in spec.metrics:
        sums[(metric.key, POOLED_ARM)] = sum((sums[(metric.key, arm)] for arm in variants), _Sums())
    metrics = {metric.key: metric for metric in spec.metrics}
    readings = {}
    for effect in scenario.true_effects:
        metric = metrics[effect.metric]
        baseline = variants[0] if effect.baseline == "control" else effect.baseline
        # CUPED applies when the metric asks for it and some arm has pre-period activity (the analyzer's rule).
        cuped = metric.cuped and metric.adjustable and any(sums[(metric.key, arm)].x for arm in sizes)
        relative = estimate(sums[(metric.key, baseline)].statistic(metric, cuped),
                            sums[(metric.key, effect.variant)].statistic(metric, cuped),
                            spec.analysis.alpha).comparison.relative
        if relative.status is not Status.OK or relative.std_error is None:
            raise AssertionError(f"{effect}: the engine cannot compare: {relative.reason}")
        readings[(effect.metric, effect.variant, effect.baseline)] = ExpectedReading(
            metric, effect.lift, relative.std_error, relative.dof)
    return readings


def _short_of_minimum(expected_users: float, share: float, minimum: int) -> float:
    """P(an arm of Binomial(users, share) has fewer than ``minimum`` users), normal approximation."""
    total = expected_users / share
    spread = math.sqrt(total * share * (1 - share))
    return float(stats.norm.cdf((minimum - 0.5 - expected_users) / spread))


def verdict_probability(
    scenario: Scenario, intended: ExpectedVerdict, readings: dict[tuple[str, str, str], ExpectedReading], users: int
) -> float:
    """A lower bound on the chance that the analyzer calls ``intended.verdict`` for ``intended.variant`` for
    ``intended.cause`` (module docstring, step 4)."""
    spec = ExperimentSpec.model_validate(scenario.definition(EXPERIMENT_KEY))
    plan, goal = spec.analysis, spec.goal
    assert goal is not None
    alpha = plan.alpha
    goal_reading = readings[(goal.key, intended.variant, "control")]
    guardrails = [readings[(metric.key, intended.variant, "control")] for metric in spec.metrics
                  if metric.role is MetricRole.GUARDRAIL]
    others_harm = sum(reading.harmed(alpha) for reading in guardrails if reading.metric.key != intended.metric)
    if intended.cause is VerdictCause.GOAL_BETTER:
        chance = goal_reading.significant(alpha, better=True) - others_harm
    elif intended.cause is VerdictCause.GOAL_WORSE:
        chance = goal_reading.significant(alpha, better=False)
    elif intended.cause is VerdictCause.GOAL_EQUIVALENT:
        if plan.equivalence_margin is None:
            return 0.0
        chance = goal_reading.proved_neutral(alpha, plan.equivalence_margin) - others_harm
    else:
        # A trade-off: the goal significantly better, and the named guardrail harmed beyond its margin.
        harmed = readings[(intended.metric, intended.variant, "control")].harmed(alpha)
        chance = goal_reading.significant(alpha, better=True) + harmed - 1
    expected = arm_users(scenario, spec, users)
    shares = {arm: count / users for arm, count in expected.items()}
    short = sum(_short_of_minimum(expected[arm], shares[arm], plan.min_users_per_variant)
                for arm in (spec.variants[0].key, intended.variant))
    return max(0.0, chance - short - DEFAULT_SRM_THRESHOLD)
