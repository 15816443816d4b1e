"""The report's HTML: plain string templates, every piece of data passed through ``html.escape`` (``_e``), the
chart data embedded as JSON that cannot end its ``<script>`` element."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from services.analyzer.report.labels import ROLE_LABELS, STATUS_LABELS, label, translated
from services.analyzer.report.verdict import (
    Lang,
    decimals,
    guardrail_warning,
    level,
    percent,
    sentence,
    srm_warning,
    verdict_label,
)
from services.analyzer.report.view import ReportView, chart_data
from services.analyzer.schemas import ComparisonOut, MetricResultsOut, SegmentResults
from splitstream.experiment import MetricType

DASH = "—"
CHARTS = ("forest", "cumulative", "users")
STYLE = """
body{font-family:system-ui,-apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:0;
color:#1d2433;background:#f5f6f8}
header{background:#1d2433;color:#fff;padding:10px 24px}header a{color:#cfe0ff}
main{max-width:1180px;margin:0 auto;padding:16px 24px}
h1{margin:8px 0 4px}.sub{color:#5b6475;margin:0 0 16px}
.card{background:#fff;border-radius:8px;padding:16px 20px;margin:16px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.banner{background:#c62828;color:#fff;font-weight:600;border-radius:8px;padding:12px 16px;margin:12px 0}
.call{font-size:1.15em;line-height:1.5;margin:8px 0}
.call[data-verdict=ship]{color:#1b5e20}.call[data-verdict=roll_back],.call[data-verdict=invalid]{color:#b71c1c}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{padding:6px 8px;border-bottom:1px solid #e3e6eb;
text-align:left}th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.chart{width:100%;height:360px}.muted{color:#5b6475}.bad{color:#b71c1c;font-weight:600}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def json_for_script(data: Any) -> str:
    """JSON that is inert inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` survives raw, so
    no value can close the element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True, slots=True)
class ListRow:
    key: str
    name: str
    status: str
    phase: int
    users: dict[str, int]
    calls: list[tuple[str, str]]
    """(variant, verdict) per treatment."""


def _layout(title: str, body: str, lang: Lang, here: str, scripts: Sequence[str] = ()) -> str:
    switch = " | ".join(
        f'<a href="{_e(here)}?lang={code.value}" hreflang="{code.value}">{name}</a>'
        for code, name in ((Lang.EN, "English"), (Lang.ZH, "中文"))
    )
    tags = "".join(f'<script src="{_e(src)}"></script>' for src in scripts)
    return (
        f'<!doctype html><html lang="{"zh-CN" if lang is Lang.ZH else "en"}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f'<style>{STYLE}</style><script src="/static/report.js"></script></head><body>'
        f'<header><a href="/experiments?lang={lang.value}">{_e(label("all_experiments", lang))}</a>'
        f' · {switch}</header><main>{body}</main>{tags}</body></html>'
    )


def _colon(lang: Lang) -> str:
    return "：" if lang is Lang.ZH else ": "


def _comma(lang: Lang) -> str:
    return "，" if lang is Lang.ZH else ", "


def _parenthesized(text: str, lang: Lang) -> str:
    return f"（{text}）" if lang is Lang.ZH else f" ({text})"


def _users(users: dict[str, int]) -> str:
    return " · ".join(f"{_e(variant)} {count:,}" for variant, count in users.items())


def list_page(rows: Iterable[ListRow], lang: Lang) -> str:
    lines = []
    for row in rows:
        link = f"/experiments/{quote(row.key, safe='')}?lang={lang.value}"
        calls = "<br>".join(f"{_e(variant)}{_colon(lang)}{_e(verdict_label(verdict, lang))}"
                            for variant, verdict in row.calls)
        lines.append(
            f'<tr><td><a href="{_e(link)}">{_e(row.key)}</a></td><td>{_e(row.name)}</td>'
            f'<td>{_e(translated(STATUS_LABELS, row.status, lang))}</td><td class="num">{row.phase}</td>'
            f"<td>{_users(row.users)}</td>"
            f'<td>{calls or _e(label("no_call", lang))}</td><td><a href="{_e(link)}">'
            f'{_e(label("open_report", lang))}</a></td></tr>'
        )
    heads = "".join(f"<th>{_e(label(name, lang))}</th>"
                    for name in ("experiment", "name", "status", "phase", "users", "call", "report"))
    table = (f'<table id="experiments"><thead><tr>{heads}</tr></thead><tbody>{"".join(lines)}</tbody></table>'
             if lines else f'<p class="muted">{_e(label("no_experiments", lang))}</p>')
    body = f'<h1>{_e(label("experiments", lang))}</h1><div class="card">{table}</div>'
    return _layout(label("experiments", lang), body, lang, "/experiments")


def error_page(status: int, message: str, lang: Lang, explanation: str | None = None) -> str:
    body = (f'<h1>{status} {_e(explanation or label("error", lang))}</h1>'
            f'<div class="card"><p id="error">{_e(message)}</p></div>')
    return _layout(f"{status} — SplitStream", body, lang, "/experiments")


def _value(value: float | None, metric_type: MetricType) -> str:
    if value is None:
        return DASH
    return percent(value) if metric_type is MetricType.BINOMIAL else f"{value:,.4g}"


def _p(value: float | None) -> str:
    if value is None:
        return DASH
    return "<0.0001" if value < 0.0001 else f"{value:.3g}"


def _lift(comparison: ComparisonOut) -> tuple[str, str]:
    """The lift and its interval as table cells."""
    if comparison.effect is None:
        return _e(comparison.reason or comparison.status), DASH
    if comparison.ci_lower is None or comparison.ci_upper is None:
        return _e(percent(comparison.effect, signed=True)), DASH
    digits = decimals(comparison.effect, comparison.ci_lower, comparison.ci_upper)
    lower = percent(comparison.ci_lower, signed=True, digits=digits)
    upper = percent(comparison.ci_upper, signed=True, digits=digits)
    return _e(percent(comparison.effect, signed=True, digits=digits)), _e(f"{lower} … {upper}")


def _verdict_card(view: ReportView, lang: Lang) -> str:
    experiment = view.experiment
    users = {variant.key: variant.users for variant in view.results.variants}
    variants = "".join(
        f'<li><b>{_e(variant.key)}</b>{" — " + _e(variant.name) if variant.name else ""}'
        f'{_e(_parenthesized(label("control", lang), lang)) if index == 0 else ""}{_colon(lang)}'
        f'{_e(label("share", lang))} {_e(percent(variant.weight or 0.0))}{_comma(lang)}{_e(label("users", lang))} '
        f'{users.get(variant.key, 0):,}</li>'
        for index, variant in enumerate(experiment.variants)
    )
    goal = experiment.goal
    if view.calls:
        calls = "".join(f'<p class="call" data-verdict="{_e(call.verdict.value)}">{_e(sentence(call, lang))}</p>'
                        for call in view.calls)
    else:
        calls = f'<p class="call">{_e(label("no_goal", lang))}</p>' if goal is None else ""
    hypothesis = (f'<p><b>{_e(label("hypothesis", lang) + _colon(lang))}</b>{_e(experiment.hypothesis)}</p>'
                  if experiment.hypothesis else "")
    goal_line = (f'<p class="muted">{_e(label("goal_metric", lang) + _colon(lang) + goal.key)}</p>'
                 if goal is not None else "")
    return (
        f'<section class="card" id="verdict"><h2>{_e(label("the_call", lang))}</h2>{calls}{goal_line}'
        f'<h3>{_e(label("what_was_tested", lang))}</h3>{hypothesis}'
        f'<p><b>{_e(label("key", lang) + _colon(lang))}</b>{_e(experiment.key)}</p>'
        f'<p><b>{_e(label("variants", lang) + _colon(lang))}</b></p><ul>{variants}</ul></section>'
    )


def _banners(view: ReportView, lang: Lang) -> str:
    texts = [srm_warning(view.results.srm.p_value, lang)] if view.srm_mismatch else []
    texts += [guardrail_warning(h.metric, h.variant, h.effect, h.ci_lower, h.ci_upper, h.margin, lang)
              for h in view.harms]
    return "".join(f'<div class="banner" role="alert">{_e(text)}</div>' for text in texts)


def _metric_rows(metric: MetricResultsOut, lang: Lang, lead: str = "") -> list[str]:
    control = metric.variants[0] if metric.variants else None
    means = {variant.key: variant.mean for variant in metric.variants}
    rows = []
    for comparison in metric.comparisons:
        lift, interval = _lift(comparison)
        reduction = comparison.variance_reduction
        # A reader should know the interval is CUPED's, and what it bought: the share of variance removed.
        note = "" if reduction is None else label("cuped_variance", lang) + percent(max(reduction, 0.0))
        cuped = f' <span class="muted cuped">{_e(note)}</span>' if note else ""
        rows.append(
            f"<tr>{lead}<td>{_e(metric.key)} <span class=muted>({_e(translated(ROLE_LABELS, metric.role, lang))})"
            f"</span>{cuped}</td><td>{_e(comparison.variant)}</td>"
            f'<td class="num">{_e(_value(control.mean if control else None, metric.type))}</td>'
            f'<td class="num">{_e(_value(means.get(comparison.variant), metric.type))}</td>'
            f'<td class="num">{lift}</td><td class="num">{interval}</td>'
            f'<td class="num">{_e(_p(comparison.p_value))}</td>'
            f'<td class="num">{_e(_p(comparison.adjusted_p_value))}</td></tr>'
        )
    return rows


def _heads(names: Sequence[str], lang: Lang, confidence: float) -> str:
    def text(name: str) -> str:
        return f"{level(confidence)} {label(name, lang)}" if name == "interval" else label(name, lang)

    return "".join(f"<th>{_e(text(name))}</th>" for name in names)


def _metrics_table(view: ReportView, lang: Lang) -> str:
    rows = [row for metric in view.results.metrics for row in _metric_rows(metric, lang)]
    heads = _heads(("metric", "variant", "control_mean", "variant_mean", "lift", "interval", "p_value", "adjusted_p"),
                   lang, 1 - view.results.alpha)
    return (f'<section class="card"><h2>{_e(label("metrics", lang))}</h2><table id="metrics"><thead><tr>{heads}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _holdout_table(view: ReportView, lang: Lang) -> str:
    """Each variant and the whole campaign against the held-out users: what the campaign did at all."""
    holdout = view.results.holdout
    if holdout is None:
        return ""
    rows = [row for metric in holdout.metrics for row in _metric_rows(metric, lang)]
    heads = _heads(("metric", "variant", "holdout_mean", "variant_mean", "lift", "interval", "p_value", "adjusted_p"),
                   lang, 1 - view.results.alpha)
    split = holdout.srm.status if holdout.srm is not None else "insufficient_data"
    summary = (f'{label("holdout_users", lang)}{_colon(lang)}{holdout.users:,}{_comma(lang)}'
               f'{label("holdout_share", lang)} {percent(holdout.expected_share)}{_comma(lang)}'
               f'{label("split_check", lang)}{_colon(lang)}'
               f'{label("mismatch", lang) if split == "mismatch" else label("ok", lang) if split == "ok" else split}')
    return (f'<section class="card" id="holdout"><h2>{_e(label("against_holdout", lang))}</h2>'
            f'<p class="muted">{_e(summary)}</p><table id="holdout-metrics"><thead><tr>{heads}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def _segment_table(segments: SegmentResults, lang: Lang) -> str:
    rows = []
    for segment in segments.segments:
        users = " · ".join(f"{variant.users:,}" for variant in segment.variants)
        split = (f'<span class="bad">{_e(label("mismatch", lang))}</span>' if segment.srm.status == "mismatch"
                 else _e(label("ok", lang) if segment.srm.status == "ok" else segment.srm.status))
        first = True
        for metric in segment.metrics:
            for comparison in metric.comparisons:
                lift, interval = _lift(comparison)
                lead = (f"<td>{_e(segment.value)}</td><td class=num>{_e(users)}</td><td>{split}</td>" if first
                        else "<td></td><td></td><td></td>")
                first = False
                rows.append(f"<tr>{lead}<td>{_e(metric.key)}</td><td>{_e(comparison.variant)}</td>"
                            f'<td class="num">{lift}</td><td class="num">{interval}</td>'
                            f'<td class="num">{_e(_p(comparison.adjusted_p_value))}</td></tr>')
    opening = f'<div class="segment" data-dimension="{_e(segments.dimension)}"><h3>{_e(segments.dimension)}</h3>'
    if not rows:
        return f'{opening}<p class="muted">{_e(label("no_segment_data", lang))}</p></div>'
    heads = _heads(("segment", "users", "split_check", "metric", "variant", "lift", "interval", "adjusted_p"),
                   lang, 1 - segments.alpha)
    return (f'{opening}<table class="segments"><thead><tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody>'
            "</table></div>")


def _segments(view: ReportView, lang: Lang) -> str:
    if not view.segments:
        return ""
    tables = "".join(_segment_table(segments, lang) for segments in view.segments)
    return (f'<section class="card" id="segments"><h2>{_e(label("segments", lang))}</h2>{tables}'
            f'<p class="muted">{_e(label("segment_note", lang))}</p></section>')


def _charts(lang: Lang, available: bool) -> str:
    if not available:
        return (f'<section class="card" id="charts"><h2>{_e(label("charts", lang))}</h2>'
                f'<p class="muted" id="charts-unavailable">{_e(label("charts_unavailable", lang))}</p></section>')
    titles = {"forest": "forest_title", "cumulative": "cumulative_title", "users": "users_title"}
    boxes = "".join(f'<h3>{_e(label(titles[name], lang))}</h3><div class="chart" id="chart-{name}"></div>'
                    for name in CHARTS)
    return f'<section class="card" id="charts"><h2>{_e(label("charts", lang))}</h2>{boxes}</section>'


def report_page(view: ReportView, lang: Lang, *, charts_available: bool) -> str:
    experiment, results = view.experiment, view.results
    title = experiment.name or experiment.key
    sub = " · ".join([
        experiment.key, translated(STATUS_LABELS, results.status, lang),
        f"{label('phase', lang)} {results.phase}", label("method", lang) + _colon(lang) + results.method.value,
    ])
    body = (
        f"<h1>{_e(title)}</h1><p class=sub>{_e(sub)}</p>{_banners(view, lang)}{_verdict_card(view, lang)}"
        f"{_metrics_table(view, lang)}{_holdout_table(view, lang)}{_charts(lang, charts_available)}"
        f"{_segments(view, lang)}"
        f'<script type="application/json" id="report-data">{json_for_script(chart_data(view, lang))}</script>'
    )
    here = f"/experiments/{quote(experiment.key, safe='')}"
    return _layout(title, body, lang, here, ["/static/echarts.min.js"] if charts_available else [])
