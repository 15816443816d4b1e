"""The readout's truth check and what it prints."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from rich.console import Console

from devstack.simulate.campaign import CampaignScenario
from devstack.simulate.readout import coverage_line, print_readout, truth_readings, verdict_checks
from devstack.simulate.scenario import POOLED_ARM, ExpectedVerdict, TrueEffect, VerdictCause
from splitstream.experiment import HOLDOUT_ARM


def _comparison(variant: str, effect: float | None, lower: float | None, upper: float | None) -> dict[str, Any]:
    return {"variant": variant, "baseline": "copy_a", "effect": effect, "ci_lower": lower, "ci_upper": upper,
            "p_value": 0.04, "adjusted_p_value": 0.08, "status": "ok" if effect is not None else "undefined",
            "reason": None}


def _holdout_table() -> dict[str, Any]:
    arms = [{"key": key, "n": 600, "sum": 30.0, "mean": 0.05, "variance": 0.05}
            for key in (HOLDOUT_ARM, "copy_a", "copy_b", "copy_c", POOLED_ARM)]
    comparisons = [_comparison(key, 0.4, 0.2, 0.6) for key in ("copy_a", "copy_b", "copy_c", POOLED_ARM)]
    return {"holdouts": ["campaign-1-holdout"], "expected_share": 0.1, "users": 600, "srm": None, "metrics": [
        {"key": "conversion", "type": "binomial", "role": "goal", "variants": arms, "comparisons": comparisons}]}


def _results() -> dict[str, Any]:
    variants = [{"key": key, "n": 6000, "sum": 500.0, "mean": 0.083, "variance": 0.07}
                for key in ("copy_a", "copy_b", "copy_c")]
    return {
        "experiment": "campaign-1", "status": "running", "phase": 1, "method": "frequentist", "alpha": 0.05,
        "correction": "holm", "srm": {"status": "ok", "p_value": 0.7},
        "variants": [{"key": v["key"], "users": 6000, "weight": 1 / 3} for v in variants],
        "metrics": [
            {"key": "conversion", "type": "binomial", "role": "goal", "variants": variants, "comparisons": [
                _comparison("copy_b", 0.07, 0.01, 0.13), _comparison("copy_c", 0.03, -0.02, 0.08)]},
            {"key": "revenue", "type": "mean", "role": "secondary", "variants": variants, "comparisons": [
                _comparison("copy_b", None, None, None), _comparison("copy_c", 0.05, 0.0, 0.10)]},
        ],
        "decisions": [{"variant": "copy_b", "verdict": "ship", "reasons": ["conversion up"]},
                      {"variant": "copy_c", "verdict": "keep_running", "reasons": ["not yet"]}],
    }


def test_truth_readings_say_whether_each_interval_covers_the_truth() -> None:
    truths = [TrueEffect("conversion", "copy_b", 0.08), TrueEffect("conversion", "copy_c", -0.05),
              TrueEffect("revenue", "copy_b", 0.08), TrueEffect("revenue", "copy_c", 0.10),
              TrueEffect("refunds", "copy_b", 0.0)]
    readings = truth_readings(_results(), truths)
    assert [reading.covered for reading in readings] == [True, False, None, True, None]
    assert (readings[1].effect, readings[1].ci_lower, readings[1].ci_upper) == (0.03, -0.02, 0.08)
    assert readings[4].effect is None
    assert coverage_line(readings, 0.05).startswith("2 of 3 true effects inside the analyzer's 95% intervals")


def test_truths_against_the_holdout_are_read_from_the_holdout_table() -> None:
    truths = [TrueEffect("conversion", POOLED_ARM, 0.44, HOLDOUT_ARM), TrueEffect("conversion", "copy_b", 0.1,
                                                                                 HOLDOUT_ARM)]
    with_holdout = {**_results(), "holdout": _holdout_table()}
    assert [(r.effect, r.covered) for r in truth_readings(with_holdout, truths)] == [(0.4, True), (0.4, False)]
    # Against the control the same variant reads the main table.
    assert truth_readings(with_holdout, [TrueEffect("conversion", "copy_b", 0.1)])[0].effect == 0.07
    assert [r.covered for r in truth_readings(_results(), truths)] == [None, None]


def test_the_campaign_readout_prints_calls_segments_holdout_and_truth() -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    scenario = CampaignScenario()
    segmented = [{"dimension": "channel", "segments": [{
        "value": "sms", "srm": {"status": "ok"}, "variants": [{"users": 10}, {"users": 11}, {"users": 12}],
        "metrics": [{"key": "visit", "comparisons": [_comparison("copy_b", 0.2, -0.1, 0.5),
                                                     _comparison("copy_c", -0.1, -0.4, 0.2)]}],
    }]}]
    results = {**_results(), "holdout": _holdout_table()}
    readings = print_readout(console, scenario, scenario.definition("campaign-1"), results, segmented,
                             Counter({"hashed": 900, "holdout": 100}))
    text = out.getvalue()
    assert "Call for copy_b: ship" in text and "visit by channel" in text and "10 / 11 / 12" in text
    assert "Intended calls against the analyzer's" in text
    intended_rows = [line for line in text.splitlines() if "proved neutral" in line]
    # Both copies are meant to tie; the fixture's analyzer shipped one and kept the other running.
    assert len(intended_rows) == 2 and all("NO" in row and "visit equivalent within ±10%" in row
                                           for row in intended_rows)
    assert "Held out: 100 of 1000 users (10.0%; the holdout's share is 10%)" in text
    assert "Simulated truth" in text and "NO" in text  # copy_c's conversion (−5%) lies outside [−2%, +8%]
    assert len(readings) == len(scenario.true_effects)
    pooled = next(r for r in readings if r.truth.variant == POOLED_ARM and r.truth.metric == "conversion")
    assert pooled.effect == 0.4



def test_a_call_matches_its_intent_by_verdict_and_a_blocked_trade_off_by_the_named_guardrail() -> None:
    intended = [ExpectedVerdict("price_39", VerdictCause.GOAL_WORSE, "revenue_per_user", 0.9),
                ExpectedVerdict("price_59", VerdictCause.GUARDRAIL_HARMED, "refund_rate", 0.9),
                ExpectedVerdict("price_69", VerdictCause.GOAL_BETTER, "revenue_per_user", 0.9)]
    harm = "guardrail refund_rate: +40.00% [+20.00%, +60.00%] is harmed beyond its 5.00% margin"
    results = {"decisions": [
        {"variant": "price_39", "verdict": "roll_back", "reasons": ["goal revenue_per_user: -10% is worse"]},
        {"variant": "price_59", "verdict": "roll_back", "reasons": [harm]},
    ]}
    checks = verdict_checks(results, intended)
    assert [(check.call, check.matches) for check in checks] == [("roll_back", True), ("roll_back", True),
                                                                (None, False)]
    # A roll back for another reason is not the intended trade-off.
    elsewhere = {"decisions": [{"variant": "price_59", "verdict": "roll_back",
                                "reasons": ["goal revenue_per_user: -3% is significantly worse"]}]}
    assert not verdict_checks(elsewhere, intended[1:2])[0].matches
