"""The declarative scenario: an experiment definition and a per-user behaviour model whose true effects are
constants of its module.

Randomness is per (seed, person), never shared between users, so a user behaves alike whatever order the
assignments come back in and whatever other users a run has: ``Random(f"{seed}:{person}")`` draws the user's
profile (attributes and latent propensity) and the pre-period history, ``Random(f"{seed}:{person}:response")``
what the user does once assigned. ``person`` is the user's place in the simulated population (``user-000042``);
the user id the APIs see also names the run (:func:`wire_user_id`), so a run's events never feed the running
experiments of earlier runs, whose users would otherwise carry the same ids.

Every model scales probabilities and amounts by the variant multiplicatively and keeps everything else
(propensities, counts of impressions, basket sizes) independent of the variant, so each metric's expected
relative lift is exactly the :class:`TrueEffect` the scenario states.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar

AttributeValue = str | bool


@dataclass(frozen=True, slots=True)
class Action:
    """One event a simulated user sends: ``name`` with ``value`` (None: a plain occurrence), timestamped ``offset``
    from the moment its batch is sent (negative: in the past, for pre-period history)."""

    name: str
    value: float | None = None
    offset: timedelta = timedelta(0)


DEFAULT_USERS = 20_000
"""Users a simulation runs with unless told otherwise: the number each scenario's intended calls are powered for."""

POOLED_ARM = "(all variants)"
"""The analyzer's name for every variant pooled, in its comparison with the holdout arm."""


@dataclass(frozen=True, slots=True)
class TrueEffect:
    """The relative lift ``variant`` has over ``baseline`` on ``metric`` in the simulation: E[variant] /
    E[baseline] − 1 of the metric's per-user quantity (Σm/Σd for a ratio). The baseline is the control, or
    ``HOLDOUT_ARM`` (held-out users), against which ``variant`` may also be ``POOLED_ARM``."""

    metric: str
    variant: str
    lift: float
    baseline: str = "control"


class VerdictCause(StrEnum):
    """Which reading makes the analyzer's call (services/analyzer/stats/decision.py, rules 3 to 5)."""

    GOAL_BETTER = "goal_better"
    """The goal is significantly better and no guardrail is harmed: ship."""
    GOAL_WORSE = "goal_worse"
    """The goal is significantly worse: roll back."""
    GUARDRAIL_HARMED = "guardrail_harmed"
    """A trade-off: the goal is significantly better, but a guardrail is harmed beyond its margin, which rolls
    back whatever the goal says."""
    GOAL_EQUIVALENT = "goal_equivalent"
    """The goal's difference is not significant and its TOST interval lies within the equivalence margin."""


VERDICT_OF_CAUSE = {
    VerdictCause.GOAL_BETTER: "ship",
    VerdictCause.GOAL_WORSE: "roll_back",
    VerdictCause.GUARDRAIL_HARMED: "roll_back",
    VerdictCause.GOAL_EQUIVALENT: "proved_neutral",
}
"""The analyzer's verdict (its wire name) for each cause."""


@dataclass(frozen=True, slots=True)
class ExpectedVerdict:
    """The call a scenario is built to get for ``variant``, why (``cause``, on ``metric``: the goal, or the harmed
    guardrail), and the chance ``power`` of getting it at the default number of users (the unit tests compute
    that chance from the scenario's own model and the analyzer's tests)."""

    variant: str
    cause: VerdictCause
    metric: str
    power: float

    @property
    def verdict(self) -> str:
        return VERDICT_OF_CAUSE[self.cause]


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What a user is before any experiment: attributes sent with assignment requests (segments are read from
    them) and a latent propensity (mean about 1) that scales the user's activity before and during the test."""

    attributes: dict[str, AttributeValue]
    propensity: float


@dataclass(frozen=True, slots=True)
class SimulatedUser:
    person: str
    """Place in the population, e.g. ``user-000042``: what the per-user randomness is keyed by."""
    user_id: str
    """The id sent to the APIs."""
    profile: UserProfile
    pre_period: list[Action] = field(default_factory=list)
    """Events from before the experiment (sent before the user is assigned)."""


class Scenario(ABC):
    """An experiment to simulate: its definition (valid as :class:`splitstream.experiment.ExperimentSpec`), the
    simulated truth, and how one user behaves."""

    name: ClassVar[str]
    control: ClassVar[str]
    """The first variant of the definition."""
    summary: ClassVar[str]
    """One line: what is tested, for the readout's header."""
    tally_metric: ClassVar[str]
    """A binomial metric of the definition, the one the run waits on: its variant sums must reach the number of
    exposed users who sent its event before the readout is read."""
    holdout_share: ClassVar[float | None] = None
    """When set, the run creates an attached holdout of this share and the definition names it."""
    segments: ClassVar[tuple[str, ...]] = ()
    true_effects: ClassVar[tuple[TrueEffect, ...]]
    expected_verdicts: ClassVar[tuple[ExpectedVerdict, ...]]
    """One intended call per treatment."""

    @abstractmethod
    def definition(self, key: str) -> dict[str, Any]:
        """The experiment's JSON definition (the ``POST /v1/experiments`` body without the salt)."""

    @abstractmethod
    def profile(self, rng: random.Random) -> UserProfile:
        """Draw one user's attributes and propensity."""

    def history(self, profile: UserProfile, rng: random.Random) -> list[Action]:
        """The user's events before the experiment (negative offsets); none by default."""
        return []

    @abstractmethod
    def respond(self, profile: UserProfile, variant: str | None, rng: random.Random) -> list[Action]:
        """What the user does after being assigned ``variant`` (None: held out, shown nothing)."""


def holdout_key(experiment_key: str) -> str:
    return f"{experiment_key}-holdout"


def person_id(index: int) -> str:
    return f"user-{index:06d}"


def wire_user_id(experiment_key: str, person: str) -> str:
    return f"{experiment_key}.{person}"


def simulated_user(scenario: Scenario, seed: int, experiment_key: str, index: int) -> SimulatedUser:
    person = person_id(index)
    rng = random.Random(f"{seed}:{person}")
    profile = scenario.profile(rng)
    return SimulatedUser(person=person, user_id=wire_user_id(experiment_key, person), profile=profile,
                         pre_period=scenario.history(profile, rng))


def response(scenario: Scenario, seed: int, user: SimulatedUser, variant: str | None) -> list[Action]:
    return scenario.respond(user.profile, variant, random.Random(f"{seed}:{user.person}:response"))


def pick(rng: random.Random, shares: Sequence[tuple[str, float]]) -> str:
    """One name drawn with probability proportional to its share."""
    return rng.choices([name for name, _ in shares], weights=[share for _, share in shares])[0]


def chance(rng: random.Random, probability: float) -> bool:
    if not 0.0 <= probability <= 1.0:
        # A clipped probability would bend the expectation and make the stated true effect a lie.
        raise ValueError(f"probability {probability} outside [0, 1]: the scenario's constants are inconsistent")
    return rng.random() < probability
