"""Campaign: three push copies for a free-delivery day, with 10% of users held out (they get no push at all). The
copies tie; the push itself works.

Each user is reached on one channel (app push, SMS or a mini-program message) and has a responsiveness r
(uniform, mean 1). A pushed user opens the app that day (``app_open``) with probability ``VISIT_RATE × channel
factor × r``, whichever copy they got: the copies word the same offer, and the scenario's truth is that wording
does not matter. A held-out user visits with that probability × ``NO_PUSH_VISIT_FACTOR``. A visitor orders with
probability ``ORDER_RATE_OF_VISITORS`` (× ``NO_PUSH_ORDER_FACTOR`` when held out: they never heard of the free
delivery) and once more with probability ``REPEAT_ORDER_RATE``, each order worth ``BASKET`` × a log-normal factor
of mean 1. Hence the true lifts:

- between copies, on every metric: 0;
- against the held-out users (the assignment answers ``holdout`` and logs their exposure in the holdout arm), for
  each copy and for all of them pooled: visits ``1 / NO_PUSH_VISIT_FACTOR − 1``, conversion (ordered at least
  once) and revenue per user ``1 / (NO_PUSH_VISIT_FACTOR × NO_PUSH_ORDER_FACTOR) − 1``.

The intended call is **proved neutral** for copies B and C: the plan's equivalence margin (±10%) is wide enough,
against the visit rate's standard error at the default 20,000 users, for the TOST interval to fit inside it. The
plan reads at α = 0.01: at a true difference of 0, a test at level α finds one (and calls ship or roll back) with
probability α, so a neutral call can never be likelier than 1 − α; at 0.05 that caps it below 0.95.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any, ClassVar

from devstack.simulate.scenario import (
    POOLED_ARM,
    Action,
    ExpectedVerdict,
    Scenario,
    TrueEffect,
    UserProfile,
    VerdictCause,
    chance,
    holdout_key,
    pick,
)
from splitstream.experiment import HOLDOUT_ARM

CONTROL = "copy_a"
COPIES = {
    CONTROL: "Your basket misses you: free delivery today",
    "copy_b": "Only today: free delivery on everything in your basket",
    "copy_c": "Free delivery today: your favourites are one tap away",
}
HOLDOUT_SHARE = 0.10
NO_PUSH_VISIT_FACTOR = 0.8
"""A held-out user's chance of visiting relative to a pushed one's."""
NO_PUSH_ORDER_FACTOR = 0.85
"""A held-out visitor's chance of ordering relative to a pushed visitor's."""

VISIT_RATE = 0.45
ORDER_RATE_OF_VISITORS = 0.18
REPEAT_ORDER_RATE = 0.2
BASKET = 85.0
BASKET_SIGMA = 0.5
CHANNELS = (("app_push", 0.55), ("sms", 0.25), ("mini_program", 0.20))
CHANNEL_RESPONSE = {"app_push": 1.2, "sms": 0.6, "mini_program": 1.0}
RESPONSIVENESS_RANGE = (0.3, 1.7)
"""Uniform; the top keeps every probability below 1: 0.45 × 1.2 × 1.7 < 1."""
EQUIVALENCE_MARGIN = 0.10
ALPHA = 0.01

_VISIT_LIFT_OVER_HOLDOUT = 1 / NO_PUSH_VISIT_FACTOR - 1
_ORDER_LIFT_OVER_HOLDOUT = 1 / (NO_PUSH_VISIT_FACTOR * NO_PUSH_ORDER_FACTOR) - 1
_LIFTS_OVER_HOLDOUT = {"visit": _VISIT_LIFT_OVER_HOLDOUT, "conversion": _ORDER_LIFT_OVER_HOLDOUT,
                       "revenue": _ORDER_LIFT_OVER_HOLDOUT}


class CampaignScenario(Scenario):
    name: ClassVar[str] = "campaign"
    control: ClassVar[str] = CONTROL
    summary: ClassVar[str] = "three push copies for a free-delivery day, 10% of users held out"
    tally_metric: ClassVar[str] = "conversion"
    holdout_share: ClassVar[float | None] = HOLDOUT_SHARE
    segments: ClassVar[tuple[str, ...]] = ("channel",)
    true_effects: ClassVar[tuple[TrueEffect, ...]] = (
        *(TrueEffect(metric, variant, 0.0)
          for variant in COPIES if variant != CONTROL for metric in _LIFTS_OVER_HOLDOUT),
        *(TrueEffect(metric, variant, lift, HOLDOUT_ARM)
          for variant in (*COPIES, POOLED_ARM) for metric, lift in _LIFTS_OVER_HOLDOUT.items()),
    )
    expected_verdicts: ClassVar[tuple[ExpectedVerdict, ...]] = tuple(
        ExpectedVerdict(variant, VerdictCause.GOAL_EQUIVALENT, "visit", power=0.95)
        for variant in COPIES if variant != CONTROL
    )

    def definition(self, key: str) -> dict[str, Any]:
        return {
            "key": key,
            "name": "Free-delivery day push",
            "hypothesis": "Naming the deadline (copy B) or the favourites (copy C) brings more visits than copy A.",
            "kind": "campaign",
            "variants": [{"key": variant, "payload": {"push": text}} for variant, text in COPIES.items()],
            "holdouts": [holdout_key(key)],
            "metrics": [
                {"key": "visit", "type": "binomial", "event": "app_open", "role": "goal"},
                {"key": "conversion", "type": "binomial", "event": "order"},
                {"key": "revenue", "type": "mean", "event": "order"},
            ],
            "analysis": {"min_days": 0, "min_users_per_variant": 5000, "alpha": ALPHA,
                         "equivalence_margin": EQUIVALENCE_MARGIN},
            "segments": list(self.segments),
        }

    def profile(self, rng: random.Random) -> UserProfile:
        channel = pick(rng, CHANNELS)
        responsiveness = rng.uniform(*RESPONSIVENESS_RANGE)
        return UserProfile(attributes={"channel": channel}, propensity=CHANNEL_RESPONSE[channel] * responsiveness)

    def respond(self, profile: UserProfile, variant: str | None, rng: random.Random) -> list[Action]:
        pushed = variant is not None
        if not chance(rng, VISIT_RATE * profile.propensity * (1.0 if pushed else NO_PUSH_VISIT_FACTOR)):
            return []
        actions = [Action("app_open")]
        if not chance(rng, ORDER_RATE_OF_VISITORS * (1.0 if pushed else NO_PUSH_ORDER_FACTOR)):
            return actions
        orders = 2 if chance(rng, REPEAT_ORDER_RATE) else 1
        return actions + [Action("order", round(BASKET * rng.lognormvariate(-BASKET_SIGMA**2 / 2, BASKET_SIGMA), 2),
                                 offset=timedelta(minutes=5 * (order + 1)))
                          for order in range(orders)]
