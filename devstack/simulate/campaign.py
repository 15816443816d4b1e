"""Campaign: three push copies, with 10% of users held out (they get no push at all).

Each user is reached on one channel (app push, SMS or a mini-program message) and has a responsiveness r
(uniform, mean 1). A pushed user orders with probability ``CONTROL_ORDER_RATE × channel factor × r × (1 +
COPY_LIFT[copy])``, a held-out user with ``CONTROL_ORDER_RATE × channel factor × r × NO_PUSH_FACTOR``; a buyer
orders once more with probability ``REPEAT_ORDER_RATE``, each order worth ``BASKET`` × (1 + BASKET_LIFT[copy]) ×
a log-normal factor of mean 1 (copy C pushes a bundle: fewer orders, bigger baskets). Hence the true lifts:

- conversion (ordered at least once): ``COPY_LIFT``;
- revenue per user: ``(1 + COPY_LIFT)(1 + BASKET_LIFT) − 1``;
- against the held-out users (the assignment answers ``holdout`` and logs their exposure in the holdout arm):
  those factors divided by ``NO_PUSH_FACTOR``, and for all copies pooled (equal weights) the mean of the factors
  divided by it: the campaign's total effect.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any, ClassVar

from devstack.simulate.scenario import (
    POOLED_ARM,
    Action,
    Scenario,
    TrueEffect,
    UserProfile,
    chance,
    holdout_key,
    pick,
)
from splitstream.experiment import HOLDOUT_ARM

CONTROL = "copy_a"
COPIES = {
    CONTROL: "Your basket misses you: free delivery today",
    "copy_b": "Only today: free delivery on everything in your basket",
    "copy_c": "Make it a feast: the family bundle ships free today",
}
COPY_LIFT = {CONTROL: 0.0, "copy_b": 0.08, "copy_c": -0.05}
BASKET_LIFT = {CONTROL: 0.0, "copy_b": 0.0, "copy_c": 0.10}
HOLDOUT_SHARE = 0.10
NO_PUSH_FACTOR = 0.7
"""A held-out user's ordering rate relative to one pushed with the control copy."""

CONTROL_ORDER_RATE = 0.08
REPEAT_ORDER_RATE = 0.2
BASKET = 85.0
BASKET_SIGMA = 0.5
CHANNELS = (("app_push", 0.55), ("sms", 0.25), ("mini_program", 0.20))
CHANNEL_RESPONSE = {"app_push": 1.2, "sms": 0.6, "mini_program": 1.0}
RESPONSIVENESS_RANGE = (0.3, 1.7)


def _orders(variant: str) -> float:
    """Expected buyers with ``variant`` relative to copy A; for the pool of the (equally weighted) copies, their
    mean."""
    if variant == POOLED_ARM:
        return sum(map(_orders, COPIES)) / len(COPIES)
    return 1 + COPY_LIFT[variant]


def _revenue(variant: str) -> float:
    """Expected revenue per user with ``variant`` relative to copy A (held-out buyers fill copy A's baskets)."""
    if variant == POOLED_ARM:
        return sum(map(_revenue, COPIES)) / len(COPIES)
    return (1 + COPY_LIFT[variant]) * (1 + BASKET_LIFT[variant])


class CampaignScenario(Scenario):
    name: ClassVar[str] = "campaign"
    control: ClassVar[str] = CONTROL
    summary: ClassVar[str] = "three push copies for a free-delivery day, 10% of users held out"
    tally_metric: ClassVar[str] = "conversion"
    holdout_share: ClassVar[float | None] = HOLDOUT_SHARE
    segments: ClassVar[tuple[str, ...]] = ("channel",)
    true_effects: ClassVar[tuple[TrueEffect, ...]] = (
        *(effect
          for variant in COPIES if variant != CONTROL
          for effect in (TrueEffect("conversion", variant, _orders(variant) - 1),
                         TrueEffect("revenue", variant, _revenue(variant) - 1))),
        *(effect
          for variant in (*COPIES, POOLED_ARM)
          for effect in (TrueEffect("conversion", variant, _orders(variant) / NO_PUSH_FACTOR - 1, HOLDOUT_ARM),
                         TrueEffect("revenue", variant, _revenue(variant) / NO_PUSH_FACTOR - 1, HOLDOUT_ARM))),
    )

    def definition(self, key: str) -> dict[str, Any]:
        return {
            "key": key,
            "name": "Free-delivery day push",
            "hypothesis": "Naming the deadline (copy B) or a bundle (copy C) brings more orders than copy A.",
            "kind": "campaign",
            "variants": [{"key": variant, "payload": {"push": text}} for variant, text in COPIES.items()],
            "holdouts": [holdout_key(key)],
            "metrics": [
                {"key": "conversion", "type": "binomial", "event": "order", "role": "goal"},
                {"key": "revenue", "type": "mean", "event": "order"},
            ],
            "analysis": {"min_days": 0, "min_users_per_variant": 5000},
            "segments": list(self.segments),
        }

    def profile(self, rng: random.Random) -> UserProfile:
        channel = pick(rng, CHANNELS)
        responsiveness = rng.uniform(*RESPONSIVENESS_RANGE)
        return UserProfile(attributes={"channel": channel}, propensity=CHANNEL_RESPONSE[channel] * responsiveness)

    def respond(self, profile: UserProfile, variant: str | None, rng: random.Random) -> list[Action]:
        effect = NO_PUSH_FACTOR if variant is None else 1 + COPY_LIFT[variant]
        if not chance(rng, CONTROL_ORDER_RATE * profile.propensity * effect):
            return []
        basket = BASKET * (1 + (0.0 if variant is None else BASKET_LIFT[variant]))
        orders = 2 if chance(rng, REPEAT_ORDER_RATE) else 1
        return [Action("order", round(basket * rng.lognormvariate(-BASKET_SIGMA**2 / 2, BASKET_SIGMA), 2),
                       offset=timedelta(minutes=5 * order))
                for order in range(orders)]
