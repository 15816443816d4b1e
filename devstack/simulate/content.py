"""Content: two titles for one article. The question title makes more users open it, but they read it for less
time; more opens outweigh the shorter reads, so time spent (the guardrail) still grows. The intended call is a
clear **ship**: a 15% relative lift in opens on a base of about 20% is found nearly always at 20,000 users.

Each user sees the title 1–6 times (``title_impression``). With probability ``CONTROL_OPEN_RATE × propensity ×
(1 + OPEN_LIFT[variant])`` the user opens the article at one of those impressions (``title_click``) and may open it
again at each later one (``REPEAT_OPEN_RATE``, the same for both titles); every open is a ``read`` of
Exp(mean ``READ_MINUTES × (1 + READ_LENGTH_LIFT[variant])``) minutes. Hence the true lifts:

- conversion (opened at least once): ``OPEN_LIFT``;
- click-through, Σ clicks / Σ impressions: ``OPEN_LIFT`` too (impressions and reopening do not depend on the
  title, so expected clicks scale with the opening probability alone);
- time spent per user (Σ minutes): ``(1 + OPEN_LIFT)(1 + READ_LENGTH_LIFT) − 1``.
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

CONTROL = "control_title"
TREATMENT = "question_title"
TITLES = {CONTROL: "Ten ways to spend less on your commute", TREATMENT: "Are you overpaying for your commute?"}

CONTROL_OPEN_RATE = 0.22
OPEN_LIFT = {CONTROL: 0.0, TREATMENT: 0.15}
READ_MINUTES = 3.0
READ_LENGTH_LIFT = {CONTROL: 0.0, TREATMENT: -0.06}
REPEAT_OPEN_RATE = 0.25
MAX_IMPRESSIONS = 6

CHANNELS = (("app", 0.5), ("web", 0.3), ("mini_program", 0.2))
CHANNEL_INTEREST = {"app": 1.2, "web": 0.9, "mini_program": 0.7}
NEW_USER_SHARE = 0.35
NEW_USER_INTEREST = 0.8
ENGAGEMENT_RANGE = (0.4, 1.6)
"""Per-user engagement, uniform: users differ far more than the titles do."""


class ContentScenario(Scenario):
    name: ClassVar[str] = "content"
    control: ClassVar[str] = CONTROL
    summary: ClassVar[str] = "a question title against a plain one: more opens, shorter reads"
    tally_metric: ClassVar[str] = "conversion"
    segments: ClassVar[tuple[str, ...]] = ("channel", "is_new")
    true_effects: ClassVar[tuple[TrueEffect, ...]] = (
        TrueEffect("conversion", TREATMENT, OPEN_LIFT[TREATMENT]),
        TrueEffect("ctr", TREATMENT, OPEN_LIFT[TREATMENT]),
        TrueEffect("time_spent", TREATMENT, (1 + OPEN_LIFT[TREATMENT]) * (1 + READ_LENGTH_LIFT[TREATMENT]) - 1),
    )
    expected_verdicts: ClassVar[tuple[ExpectedVerdict, ...]] = (
        ExpectedVerdict(TREATMENT, VerdictCause.GOAL_BETTER, "conversion", power=0.99),
    )

    def definition(self, key: str) -> dict[str, Any]:
        return {
            "key": key,
            "name": "Article title",
            "hypothesis": "A question in the title makes more readers open the article without costing reading time.",
            "kind": "content",
            "variants": [{"key": variant, "weight": 0.5, "payload": {"title": title}}
                         for variant, title in TITLES.items()],
            "metrics": [
                {"key": "conversion", "type": "binomial", "event": "title_click", "role": "goal"},
                {"key": "ctr", "type": "ratio", "event": "title_click", "denominator_event": "title_impression"},
                {"key": "time_spent", "type": "mean", "event": "read", "role": "guardrail", "margin": 0.05},
            ],
            # A simulation lasts minutes, so the usual week-long minimum runtime is waived to show the call.
            "analysis": {"min_days": 0, "min_users_per_variant": 5000},
            "segments": list(self.segments),
        }

    def profile(self, rng: random.Random) -> UserProfile:
        channel = pick(rng, CHANNELS)
        is_new = rng.random() < NEW_USER_SHARE
        engagement = rng.uniform(*ENGAGEMENT_RANGE)
        propensity = CHANNEL_INTEREST[channel] * (NEW_USER_INTEREST if is_new else 1.0) * engagement
        return UserProfile(attributes={"channel": channel, "is_new": is_new}, propensity=propensity)

    def respond(self, profile: UserProfile, variant: str | None, rng: random.Random) -> list[Action]:
        if variant is None:
            return []
        impressions = rng.randint(1, MAX_IMPRESSIONS)
        opens = chance(rng, CONTROL_OPEN_RATE * profile.propensity * (1 + OPEN_LIFT[variant]))
        first_open = rng.randrange(impressions)
        mean_minutes = READ_MINUTES * (1 + READ_LENGTH_LIFT[variant])
        actions: list[Action] = []
        for shown in range(impressions):
            at = timedelta(seconds=30 * shown)
            actions.append(Action("title_impression", offset=at))
            if opens and (shown == first_open or (shown > first_open and chance(rng, REPEAT_OPEN_RATE))):
                actions.append(Action("title_click", offset=at + timedelta(seconds=1)))
                actions.append(Action("read", round(rng.expovariate(1 / mean_minutes), 2),
                                      offset=at + timedelta(seconds=2)))
        return actions
