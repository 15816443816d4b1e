"""Rich tables of the services' JSON answers. Every cell taken from an answer goes in as :class:`Text`, never as
markup, so a reason such as "[+1.2%, +3.4%]" is printed as is."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from splitstream.cli.client import JsonObject, PowerEstimate

IMPROVEMENT_STYLE = "green"
HARM_STYLE = "red"
_STATUS_STYLES = {"running": "green", "paused": "yellow", "stopped": "dim", "shipped": "cyan"}
_VERDICT_STYLES = {
    "ship": "bold green", "roll_back": "bold red", "invalid": "bold red", "keep_running": "bold yellow",
    "proved_neutral": "bold cyan",
}
_SHORT_VALUE = 24
"""Scalar changes up to this length are shown before → after in the history; longer ones by field name only."""


class Direction(StrEnum):
    IMPROVEMENT = "improvement"
    HARM = "harm"


def _percent(value: Any, *, signed: bool = True) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    return f"{value:+.2%}" if signed else f"{value:.2%}"


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "n/a"


def _share(value: Any) -> str:
    return f"{value * 100:g}%" if isinstance(value, int | float) else "n/a"


def significant_direction(comparison: Mapping[str, Any], higher_is_better: bool) -> Direction | None:
    """How a comparison reads once ``higher_is_better`` is taken into account: an interval wholly above or below
    zero is a significant change (the analyzer's own rule for its calls); anything else, or no valid test, is
    None."""
    lower, upper = comparison.get("ci_lower"), comparison.get("ci_upper")
    if comparison.get("status") != "ok" or not isinstance(lower, int | float) or not isinstance(upper, int | float):
        return None
    if lower > 0:
        went_up = True
    elif upper < 0:
        went_up = False
    else:
        return None
    return Direction.IMPROVEMENT if went_up == higher_is_better else Direction.HARM


def _direction_style(direction: Direction | None) -> str:
    if direction is Direction.IMPROVEMENT:
        return IMPROVEMENT_STYLE
    if direction is Direction.HARM:
        return HARM_STYLE
    return ""


# Experiments


def experiments_table(experiments: list[JsonObject]) -> Table:
    table = Table(title="Experiments")
    for column in ("key", "status", "phase", "version", "kind", "variants (weight)", "coverage"):
        table.add_column(column, justify="right" if column in {"phase", "version", "coverage"} else "left")
    for experiment in experiments:
        status = str(experiment.get("status", ""))
        if status == "shipped" and experiment.get("shipped_variant"):
            status = f"shipped ({experiment['shipped_variant']})"
        variants = ", ".join(
            f"{variant.get('key')} {_share(variant.get('weight'))}" for variant in experiment.get("variants", [])
        )
        table.add_row(
            Text(str(experiment.get("key", ""))),
            Text(status, style=_STATUS_STYLES.get(str(experiment.get("status")), "")),
            Text(str(experiment.get("phase", ""))),
            Text(str(experiment.get("version", ""))),
            Text(str(experiment.get("kind", ""))),
            Text(variants),
            Text(_share(experiment.get("coverage"))),
        )
    return table


def _when(stamp: Any) -> str:
    try:
        moment = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _is_short_scalar(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float | bool) and len(str(value)) <= _SHORT_VALUE)


def describe_changes(entry: Mapping[str, Any]) -> str:
    """The fields an audit entry changed; short scalar values as ``field: before → after``."""
    changes = entry.get("changes") or {}
    if entry.get("action") == "create":
        return "(new experiment)"
    described = []
    for name, change in changes.items():
        before, after = change.get("before"), change.get("after")
        if _is_short_scalar(before) and _is_short_scalar(after):
            described.append(f"{name}: {before} → {after}")
        else:
            described.append(str(name))
    return ", ".join(described) or "(no field changed)"


def history_table(entries: list[JsonObject]) -> Table:
    table = Table(title="History")
    for column in ("version", "action", "when", "scope", "changed fields"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for entry in entries:
        actor = entry.get("actor") or {}
        table.add_row(
            Text(str(entry.get("version", ""))),
            Text(str(entry.get("action", ""))),
            Text(_when(entry.get("at"))),
            Text(f"{actor.get('scope', '?')} ({actor.get('key_id', '?')})"),
            Text(describe_changes(entry)),
        )
    return table


# Results


def _interval_label(alpha: Any) -> str:
    return f"{(1 - alpha) * 100:g}% CI" if isinstance(alpha, int | float) else "CI"


def _mean(value: Any, metric_type: str) -> str:
    return _percent(value, signed=False) if metric_type == "binomial" else _number(value, ".4f")


def _metric_rows(
    metric: JsonObject, higher_is_better: bool, with_chance: bool
) -> list[list[Text]]:
    """One row per variant: the control's then each treatment's, with its comparison against the control."""
    comparisons = {comparison.get("variant"): comparison for comparison in metric.get("comparisons", [])}
    metric_type = str(metric.get("type", ""))
    rows = []
    for variant in metric.get("variants", []):
        row = [Text(str(variant.get("key", ""))), Text(str(variant.get("n", ""))),
               Text(_mean(variant.get("mean"), metric_type))]
        comparison = comparisons.get(variant.get("key"))
        if comparison is None:
            row += [Text("(control)", style="dim"), Text(""), Text(""), Text("")]
            row += [Text("")] if with_chance else []
        else:
            style = _direction_style(significant_direction(comparison, higher_is_better))
            if comparison.get("effect") is None:
                lift = Text(str(comparison.get("reason") or comparison.get("status") or "n/a"), style="dim")
            else:
                lift = Text(_percent(comparison["effect"]), style=style)
            interval = f"[{_percent(comparison.get('ci_lower'))}, {_percent(comparison.get('ci_upper'))}]"
            row += [lift, Text(interval, style=style), Text(_number(comparison.get("p_value"), ".3g")),
                    Text(_number(comparison.get("adjusted_p_value"), ".3g"))]
            row += [Text(_percent(comparison.get("chance_to_win"), signed=False))] if with_chance else []
        rows.append(row)
    return rows


def _has_chance_to_win(metrics: list[JsonObject]) -> bool:
    return any(c.get("chance_to_win") is not None for metric in metrics for c in metric.get("comparisons", []))


def _results_table(title: str, alpha: Any, with_chance: bool, *, with_metric: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    columns = ["metric"] if with_metric else []
    columns += ["variant", "users", "mean", "lift vs control", _interval_label(alpha), "p-value", "adjusted p"]
    columns += ["P(win)"] if with_chance else []
    for column in columns:
        table.add_column(column, justify="left" if column in {"metric", "variant"} else "right")
    return table


def _metric_title(metric: JsonObject, higher_is_better: bool) -> str:
    details = [str(metric.get("type", "")), str(metric.get("role", ""))]
    if not higher_is_better:
        details.append("lower is better")
    if metric.get("cuped"):
        reductions = [c["variance_reduction"] for c in metric.get("comparisons", [])
                      if isinstance(c.get("variance_reduction"), int | float)]
        details.append(f"CUPED, variance −{max(0.0, min(reductions)):.0%}" if reductions else "CUPED")
    return f"{metric.get('key')} ({', '.join(d for d in details if d)})"


def _srm_line(srm: Mapping[str, Any]) -> Text:
    status = str(srm.get("status", "n/a"))
    line = Text("Sample-ratio check: ")
    line.append(status, style=HARM_STYLE if status == "mismatch" else "")
    if srm.get("p_value") is not None:
        line.append(f" (p = {_number(srm['p_value'], '.3g')})")
    if srm.get("reason"):
        line.append(f" — {srm['reason']}")
    return line


def decision_lines(decisions: list[JsonObject]) -> list[Text]:
    lines = []
    for decision in decisions:
        verdict = str(decision.get("verdict", ""))
        line = Text(f"Call for {decision.get('variant')}: ")
        line.append(verdict.replace("_", " "), style=_VERDICT_STYLES.get(verdict, "bold"))
        reasons = decision.get("reasons") or []
        if reasons:
            line.append(" — " + "; ".join(str(reason) for reason in reasons))
        lines.append(line)
    return lines


def _header(results: JsonObject) -> Text:
    header = Text()
    header.append(f"Experiment {results.get('experiment')}", style="bold")
    facts = [("status", results.get("status")), ("phase", results.get("phase")), ("method", results.get("method")),
             ("alpha", results.get("alpha")), ("correction", results.get("correction"))]
    header.append(" — " + ", ".join(f"{name} {value}" for name, value in facts if value is not None))
    return header


def results_view(results: JsonObject, higher_is_better: Mapping[str, bool]) -> RenderableType:
    """The readout: a table per metric, green where a treatment significantly improves it and red where it
    significantly harms it (``higher_is_better``: metric key → direction, True when absent), then the calls."""
    metrics: list[JsonObject] = results.get("metrics", [])
    with_chance = _has_chance_to_win(metrics)
    parts: list[RenderableType] = [_header(results), _srm_line(results.get("srm") or {})]
    for metric in metrics:
        better_up = higher_is_better.get(str(metric.get("key")), True)
        table = _results_table(_metric_title(metric, better_up), results.get("alpha"), with_chance)
        for row in _metric_rows(metric, better_up, with_chance):
            table.add_row(*row)
        parts.append(table)
    holdout = results.get("holdout")
    if holdout:
        parts += _holdout_parts(holdout, results.get("alpha"), higher_is_better, with_chance)
    decisions = decision_lines(results.get("decisions", []))
    parts += decisions or [Text("No calls: the experiment declares no goal metric.", style="dim")]
    return Group(*parts)


def _add_metric_rows(
    table: Table, metrics: list[JsonObject], higher_is_better: Mapping[str, bool], with_chance: bool
) -> None:
    """Rows of several metrics in one table, each metric's title on its first row."""
    for metric in metrics:
        better_up = higher_is_better.get(str(metric.get("key")), True)
        rows = _metric_rows(metric, better_up, with_chance)
        for index, row in enumerate(rows):
            label = Text(_metric_title(metric, better_up) if index == 0 else "")
            table.add_row(label, *row, end_section=index == len(rows) - 1)


def _holdout_parts(
    holdout: JsonObject, alpha: Any, higher_is_better: Mapping[str, bool], with_chance: bool
) -> list[RenderableType]:
    """Each variant and ``(all variants)`` against the held-out users (the ``(control)`` row is the holdout)."""
    share = holdout.get("expected_share")
    title = (f"Against the holdout ({', '.join(holdout.get('holdouts') or []) or 'none applies now'}): "
             f"{holdout.get('users', 0):,} held-out users"
             + (f", {share:.1%} expected" if isinstance(share, int | float) else ""))
    table = _results_table(title, alpha, with_chance, with_metric=True)
    _add_metric_rows(table, holdout.get("metrics", []), higher_is_better, with_chance)
    srm = holdout.get("srm")
    return [table, _srm_line(srm)] if srm else [table]


def segment_results_view(results: JsonObject, higher_is_better: Mapping[str, bool]) -> RenderableType:
    """``?segment=`` answers: one table per value of the dimension, its metrics one after the other."""
    segments: list[JsonObject] = results.get("segments", [])
    with_chance = _has_chance_to_win([metric for segment in segments for metric in segment.get("metrics", [])])
    parts: list[RenderableType] = [_header(results)]
    if not segments:
        parts.append(Text(f"No users in any segment of {results.get('dimension')} yet.", style="dim"))
    for segment in segments:
        srm = segment.get("srm") or {}
        title = f"{results.get('dimension')} = {segment.get('value')} (sample ratio: {srm.get('status', 'n/a')})"
        table = _results_table(title, results.get("alpha"), with_chance, with_metric=True)
        _add_metric_rows(table, segment.get("metrics", []), higher_is_better, with_chance)
        parts.append(table)
    return Group(*parts)


def power_view(estimate: PowerEstimate, variants: int, daily_users: int | None) -> Text:
    text = Text()
    text.append(f"{estimate.users_per_variant:,}", style="bold")
    text.append(f" users per variant ({estimate.users_per_variant * variants:,} in all over {variants} variants)")
    if estimate.days is not None and daily_users is not None:
        text.append("\n")
        text.append(f"{estimate.days:,}", style="bold")
        text.append(f" day{'s' if estimate.days != 1 else ''} at {daily_users:,} new users a day")
    return text
