"""Pricing: three prices for a meal-kit box, shown to subscribers choosing this week's box. The cheaper box sells
more and earns less; the dearer one earns more per user, but its buyers ask for refunds far more often.

The intended calls: **roll back** both. At 59 it is a trade-off blocked by the guardrail: revenue per user is up
about 14%, but the refund rate is up about 42%, far beyond its 5% margin, and a harmed guardrail rolls back
whatever the goal says. At 39 it is a plain loss: revenue per user is down about 11%.

Each user has a spend propensity s: high for the 40% of regulars, low for the rest. Before the test, on each of the
``HISTORY_DAYS`` days, the user ordered with probability ``HISTORY_DAILY_ORDER_RATE × s`` at the control price:
that pre-period spend is CUPED's covariate, correlated with spend in the test through s. In the test the user
buys with probability ``CONTROL_PURCHASE_RATE × s × (1 + DEMAND_LIFT[variant])``, places one more order with
probability ``REPEAT_ORDER_RATE``, each of 1–3 boxes at the variant's price, and a buyer asks for one refund with
probability ``REFUND_RATE × (1 + REFUND_LIFT[variant])``. Hence the true lifts against the control price p₀:

- conversion (bought at least once): ``DEMAND_LIFT``;
- revenue per user: ``(1 + DEMAND_LIFT) · p / p₀ − 1``;
- average order value, Σ order values / Σ orders: ``p / p₀ − 1`` (orders per buyer and boxes per order do not
  depend on the price);
- refund rate (users with a refund): ``(1 + DEMAND_LIFT)(1 + REFUND_LIFT) − 1``, more buyers mean more refunds.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any, ClassVar

from devstack.simulate.scenario import (
    Action,
    ExpectedVerdict,
    Scenario,
    TrueEffect,
    UserProfile,
    VerdictCause,
    chance,
    pick,
)

CONTROL = "price_49"
PRICES = {CONTROL: 49.0, "price_39": 39.0, "price_59": 59.0}
DEMAND_LIFT = {CONTROL: 0.0, "price_39": 0.12, "price_59": -0.05}
REFUND_LIFT = {CONTROL: 0.0, "price_39": -0.10, "price_59": 0.50}

CONTROL_PURCHASE_RATE = 0.35
REPEAT_ORDER_RATE = 0.25
BOXES_PER_ORDER = (("1", 0.6), ("2", 0.3), ("3", 0.1))
REFUND_RATE = 0.15
"""Of buyers at the control price."""

HISTORY_DAYS = (1, 2)
"""Days before the test with simulated orders: the collector takes events up to 3 days old, and CUPED reads the
whole UTC days before the day of the first exposure."""
HISTORY_DAILY_ORDER_RATE = 0.4
REGULAR_SHARE = 0.40
"""Regulars order most days; the others now and then. Spend is then far more predictable from the pre-period
than under one smooth propensity: the squared correlation of pre-period and in-test revenue, the share of
variance CUPED can remove, is about 0.23 (40,000 simulated users)."""
REGULAR_PROPENSITY = (2.0, 2.4)
"""Uniform; the top keeps every probability below 1: 0.35 × 2.4 × 1.12 < 1 and 0.4 × 2.4 < 1."""
OCCASIONAL_PROPENSITY = (0.05, 0.4)


def _relative(variant: str) -> float:
    return PRICES[variant] / PRICES[CONTROL]


class PricingScenario(Scenario):
    name: ClassVar[str] = "pricing"
    control: ClassVar[str] = CONTROL
    summary: ClassVar[str] = "a meal-kit box at 39, 49 or 59: demand against price, with refunds as a guardrail"
    tally_metric: ClassVar[str] = "conversion"
    true_effects: ClassVar[tuple[TrueEffect, ...]] = tuple(
        effect
        for variant in PRICES if variant != CONTROL
        for effect in (
            TrueEffect("conversion", variant, DEMAND_LIFT[variant]),
            TrueEffect("revenue_per_user", variant, (1 + DEMAND_LIFT[variant]) * _relative(variant) - 1),
            TrueEffect("average_order_value", variant, _relative(variant) - 1),
            TrueEffect("refund_rate", variant, (1 + DEMAND_LIFT[variant]) * (1 + REFUND_LIFT[variant]) - 1),
        )
    )
    expected_verdicts: ClassVar[tuple[ExpectedVerdict, ...]] = (
        ExpectedVerdict("price_39", VerdictCause.GOAL_WORSE, "revenue_per_user", power=0.98),
        ExpectedVerdict("price_59", VerdictCause.GUARDRAIL_HARMED, "refund_rate", power=0.98),
    )

    def definition(self, key: str) -> dict[str, Any]:
        return {
            "key": key,
            "name": "Meal-kit box price",
            "hypothesis": "At 59 the box earns more per user than at 49 without more refunds; at 39 it sells more.",
            "kind": "pricing",
            "variants": [{"key": variant, "payload": {"price_per_box": price, "currency": "CNY"}}
                         for variant, price in PRICES.items()],
            "metrics": [
                {"key": "conversion", "type": "binomial", "event": "purchase"},
                {"key": "revenue_per_user", "type": "mean", "event": "purchase", "role": "goal"},
                {"key": "average_order_value", "type": "ratio", "event": "purchase", "denominator_event": "purchase"},
                {"key": "refund_rate", "type": "binomial", "event": "refund", "role": "guardrail",
                 "higher_is_better": False, "margin": 0.05},
            ],
            "analysis": {"min_days": 0, "min_users_per_variant": 5000},
        }

    def profile(self, rng: random.Random) -> UserProfile:
        regular = rng.random() < REGULAR_SHARE
        spend = rng.uniform(*(REGULAR_PROPENSITY if regular else OCCASIONAL_PROPENSITY))
        return UserProfile(attributes={"regular": regular}, propensity=spend)

    def history(self, profile: UserProfile, rng: random.Random) -> list[Action]:
        orders = []
        for days in HISTORY_DAYS:
            if chance(rng, HISTORY_DAILY_ORDER_RATE * profile.propensity):
                # Up to 6 hours earlier than ``days`` whole days ago: still within the collector's 3 days.
                ago = timedelta(days=days, seconds=rng.randrange(6 * 3600))
                orders.append(Action("purchase", self._order_value(CONTROL, rng), offset=-ago))
        return orders

    def respond(self, profile: UserProfile, variant: str | None, rng: random.Random) -> list[Action]:
        if variant is None or not chance(rng, CONTROL_PURCHASE_RATE * profile.propensity * (1 + DEMAND_LIFT[variant])):
            return []
        orders = 2 if chance(rng, REPEAT_ORDER_RATE) else 1
        actions = [Action("purchase", self._order_value(variant, rng), offset=timedelta(minutes=order))
                   for order in range(orders)]
        if chance(rng, REFUND_RATE * (1 + REFUND_LIFT[variant])):
            first_order = actions[0].value
            actions.append(Action("refund", first_order, offset=timedelta(minutes=orders)))
        return actions

    @staticmethod
    def _order_value(variant: str, rng: random.Random) -> float:
        return PRICES[variant] * int(pick(rng, BOXES_PER_ORDER))
