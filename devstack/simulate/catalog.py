"""The scenarios `splitstream simulate --scenario` offers, by name."""

from __future__ import annotations

from enum import StrEnum

from devstack.simulate.campaign import CampaignScenario
from devstack.simulate.content import ContentScenario
from devstack.simulate.pricing import PricingScenario
from devstack.simulate.scenario import Scenario


class ScenarioName(StrEnum):
    CONTENT = "content"
    PRICING = "pricing"
    CAMPAIGN = "campaign"


SCENARIOS: dict[ScenarioName, Scenario] = {
    ScenarioName.CONTENT: ContentScenario(),
    ScenarioName.PRICING: PricingScenario(),
    ScenarioName.CAMPAIGN: CampaignScenario(),
}
