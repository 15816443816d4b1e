"""What a simulation prints at the end. Every number comes from the analyzer's answers (the CLI's own results
tables), except the simulated truth, which is set against the analyzer's intervals: covering it is what a correct
pipeline and a correct statistics engine should do about 95% of the time, and the call each scenario is built to
get, set against the analyzer's call."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from devstack.simulate.scenario import DEFAULT_USERS, ExpectedVerdict, Scenario, TrueEffect, VerdictCause
from splitstream.cli.render import results_view
from splitstream.experiment import HOLDOUT_ARM

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TruthReading:
    """A true effect next to the analyzer's estimate of it; ``covered`` is None when there is no interval."""

    truth: TrueEffect
    effect: float | None
    ci_lower: float | None
    ci_upper: float | None

    @property
    def covered(self) -> bool | None:
        if self.ci_lower is None or self.ci_upper is None:
            return None
        return self.ci_lower <= self.truth.lift <= self.ci_upper


def _comparison(results: Mapping[str, Any], truth: TrueEffect) -> Mapping[str, Any]:
    """The analyzer's comparison of the truth's variant with its baseline: against the control in the results'
    metrics, against the held-out users in their ``holdout`` table."""
    table = (results.get("holdout") or {}) if truth.baseline == HOLDOUT_ARM else results
    for reading in table.get("metrics", []):
        if reading["key"] == truth.metric:
            for comparison in reading["comparisons"]:
                if comparison["variant"] == truth.variant:
                    return dict(comparison)
    return {}


def truth_readings(results: Mapping[str, Any], truths: Iterable[TrueEffect]) -> list[TruthReading]:
    """Each true effect with the analyzer's relative lift and interval for the same metric, variant and
    baseline."""
    readings = []
    for truth in truths:
        comparison = _comparison(results, truth)
        readings.append(TruthReading(truth, comparison.get("effect"), comparison.get("ci_lower"),
                                     comparison.get("ci_upper")))
    return readings


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def truth_table(readings: Iterable[TruthReading], alpha: float) -> Table:
    table = Table(title="Simulated truth against the analyzer's estimates", title_justify="left")
    for column in ("metric", "variant", "against", "true lift", "measured lift", f"{1 - alpha:.0%} CI",
                   "truth inside CI"):
        table.add_column(column, justify="left" if column in {"metric", "variant", "against"} else "right")
    for reading in readings:
        covered = reading.covered
        verdict = (Text("n/a (no interval)", style="dim") if covered is None
                   else Text("yes", style="green") if covered else Text("NO", style="bold red"))
        table.add_row(reading.truth.metric, reading.truth.variant, reading.truth.baseline, _percent(reading.truth.lift),
                      _percent(reading.effect), f"[{_percent(reading.ci_lower)}, {_percent(reading.ci_upper)}]",
                      verdict)
    return table


def coverage_line(readings: Iterable[TruthReading], alpha: float) -> str:
    """How many truths the intervals cover, against what chance allows: with k independent-ish intervals at
    level 1 − α, about α·k misses are expected."""
    judged = [reading.covered for reading in readings if reading.covered is not None]
    return (f"{sum(judged)} of {len(judged)} true effects inside the analyzer's {1 - alpha:.0%} intervals "
            f"(about {1 - alpha:.0%} expected by chance; many misses would point to a bug)")


@dataclass(frozen=True, slots=True)
class VerdictCheck:
    """A scenario's intended call for one treatment next to the analyzer's; ``call`` is None when the analyzer made
    none (no decision listed for the variant)."""

    intended: ExpectedVerdict
    call: str | None
    reasons: tuple[str, ...]

    @property
    def matches(self) -> bool:
        """The same verdict, and for a guardrail-blocked trade-off a reason that names the guardrail."""
        if self.call != self.intended.verdict:
            return False
        return self.intended.cause is not VerdictCause.GUARDRAIL_HARMED or any(
            reason.startswith(f"guardrail {self.intended.metric}:") for reason in self.reasons)


def verdict_checks(results: Mapping[str, Any], intended: Iterable[ExpectedVerdict]) -> list[VerdictCheck]:
    decisions = {decision["variant"]: decision for decision in results.get("decisions", [])}
    checks = []
    for expected in intended:
        decision = decisions.get(expected.variant, {})
        checks.append(VerdictCheck(expected, decision.get("verdict"), tuple(map(str, decision.get("reasons", [])))))
    return checks


def _cause(intended: ExpectedVerdict, equivalence_margin: float | None) -> str:
    metric = intended.metric
    if intended.cause is VerdictCause.GOAL_BETTER:
        return f"{metric} significantly better, no guardrail harmed"
    if intended.cause is VerdictCause.GOAL_WORSE:
        return f"{metric} significantly worse"
    if intended.cause is VerdictCause.GUARDRAIL_HARMED:
        return f"goal better, but guardrail {metric} harmed beyond its margin"
    margin = "its margin" if equivalence_margin is None else f"±{equivalence_margin:.0%}"
    return f"{metric} equivalent within {margin}"


def verdict_table(checks: Iterable[VerdictCheck], equivalence_margin: float | None) -> Table:
    table = Table(title="Intended calls against the analyzer's", title_justify="left")
    for column in ("variant", "intended call", "because", f"power at {DEFAULT_USERS:,} users", "analyzer's call",
                   "as intended"):
        table.add_column(column, justify="right" if column.startswith("power") else "left")
    for check in checks:
        intended = check.intended
        table.add_row(intended.variant, intended.verdict.replace("_", " "), _cause(intended, equivalence_margin),
                      f"≥ {intended.power:.0%}", "none" if check.call is None else check.call.replace("_", " "),
                      Text("yes", style="green") if check.matches else Text("NO", style="bold red"))
    return table


def segment_table(segmented: Mapping[str, Any], metric: str) -> Table:
    """The metric's lift per segment value and treatment, p-values adjusted across the whole table."""
    table = Table(title=f"{metric} by {segmented['dimension']}", title_justify="left")
    for column in ("segment", "users per variant", "variant", "lift vs control", "CI", "adjusted p",
                   "sample ratio"):
        table.add_column(column, justify="left" if column in {"segment", "variant"} else "right")
    for segment in segmented["segments"]:
        users = " / ".join(str(variant["users"]) for variant in segment["variants"])
        comparisons = [c for reading in segment["metrics"] if reading["key"] == metric
                       for c in reading["comparisons"]]
        for index, comparison in enumerate(comparisons):
            p_value = comparison.get("adjusted_p_value")
            table.add_row(
                segment["value"] if index == 0 else "", users if index == 0 else "", comparison["variant"],
                _percent(comparison.get("effect")),
                f"[{_percent(comparison.get('ci_lower'))}, {_percent(comparison.get('ci_upper'))}]",
                "n/a" if p_value is None else f"{p_value:.3g}", segment["srm"]["status"] if index == 0 else "",
                end_section=index == len(comparisons) - 1,
            )
    return table


def print_readout(
    console: Console, scenario: Scenario, definition: Mapping[str, Any], results: Mapping[str, Any],
    segmented: Iterable[Mapping[str, Any]], reasons: Counter[str],
) -> list[TruthReading]:
    """The analyzer's readout (a table per metric and the calls), the intended calls against the analyzer's, the
    goal metric by segment, who was assigned why, and the simulated truth; returns the truth readings."""
    metrics = definition.get("metrics", [])
    higher_is_better = {metric["key"]: bool(metric.get("higher_is_better", True)) for metric in metrics}
    goal = next((metric["key"] for metric in metrics if metric.get("role") == "goal"), scenario.tally_metric)
    console.print(f"\n[bold]{scenario.name}[/bold]: {scenario.summary}", highlight=False)
    console.print(results_view(dict(results), higher_is_better))
    margin = definition.get("analysis", {}).get("equivalence_margin")
    console.print(verdict_table(verdict_checks(results, scenario.expected_verdicts), margin))
    for table in segmented:
        console.print(segment_table(table, goal))
    console.print("Assignment reasons: " + ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()),
                  highlight=False)
    if scenario.holdout_share is not None:
        held = reasons.get("holdout", 0)
        total = sum(reasons.values())
        console.print(f"Held out: {held} of {total} users ({held / max(total, 1):.1%}; the holdout's share is "
                      f"{scenario.holdout_share:.0%}), shown nothing: the baseline of the campaign's total effect.",
                      highlight=False)
    readings = truth_readings(results, scenario.true_effects)
    alpha = float(results.get("alpha", 0.05))
    console.print(truth_table(readings, alpha))
    console.print(coverage_line(readings, alpha), highlight=False)
    return readings
