"""The call for each treatment in plain words, in English and Chinese: what won, by how much, how sure, and what to
do next; and the warnings that make a readout untrustworthy. Pure: the report builds a :class:`Call` from the
results (services/analyzer/report/view.py) and renders the sentence in the reader's language."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from services.analyzer.stats.decision import Verdict


class Lang(StrEnum):
    EN = "en"
    ZH = "zh"


class Interval(StrEnum):
    CONFIDENCE = "confidence"
    CREDIBLE = "credible"
    """Bayesian: the interval holds the lift with the stated posterior probability."""


@dataclass(frozen=True, slots=True)
class Call:
    """One treatment's call on the goal metric, with the goal's relative lift and its interval."""

    variant: str
    verdict: Verdict
    metric: str
    effect: float | None
    ci_lower: float | None
    ci_upper: float | None
    confidence: float = 0.95
    """1 − alpha."""
    interval: Interval = Interval.CONFIDENCE
    higher_is_better: bool = True
    harmed_guardrails: tuple[str, ...] = ()
    waiting: bool = False
    """keep_running because the plan's minimum users or days are not reached yet (rather than inconclusive data)."""
    equivalence_margin: float | None = None
    chance_to_win: float | None = None

    @property
    def significantly_worse(self) -> bool:
        """The goal's interval lies wholly on the harmful side of zero."""
        if self.ci_lower is None or self.ci_upper is None:
            return False
        return self.ci_upper < 0 if self.higher_is_better else self.ci_lower > 0


def decimals(*values: float) -> int:
    """Decimals of a percentage that show the largest of ``values``: one, or two when all are below 1% (not 0)."""
    largest = max((abs(value) for value in values), default=0.0)
    return 2 if 0 < largest < 0.01 else 1


def percent(value: float, *, signed: bool = False, digits: int | None = None) -> str:
    """``0.0771`` → ``7.7%`` (``+7.7%`` signed), with a true minus sign; ``digits`` defaults to :func:`decimals`."""
    digits = decimals(value) if digits is None else digits
    text = f"{value:+.{digits}%}" if signed else f"{value:.{digits}%}"
    return text.replace("-", "−")


def level(confidence: float) -> str:
    """``0.95`` → ``95%``, ``0.995`` → ``99.5%``."""
    return f"{round(confidence * 100, 2):g}%"


_VERDICT_LABELS = {
    Lang.EN: {
        Verdict.SHIP: "Ship", Verdict.ROLL_BACK: "Roll back", Verdict.KEEP_RUNNING: "Keep running",
        Verdict.PROVED_NEUTRAL: "No real difference", Verdict.INVALID: "Invalid (split mismatch)",
    },
    Lang.ZH: {
        Verdict.SHIP: "上线", Verdict.ROLL_BACK: "回滚", Verdict.KEEP_RUNNING: "继续运行",
        Verdict.PROVED_NEUTRAL: "无实质差异", Verdict.INVALID: "无效（分流失衡）",
    },
}


def verdict_label(verdict: str, lang: Lang) -> str:
    """A short label of a verdict for lists; an unknown verdict is shown as it came."""
    try:
        return _VERDICT_LABELS[lang][Verdict(verdict)]
    except ValueError:
        return verdict


def _names(names: Sequence[str], lang: Lang) -> str:
    if lang is Lang.ZH:
        return "、".join(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _action(call: Call, lang: Lang) -> str:
    """What to do next, with the reason, after the colon of the sentence."""
    zh = lang is Lang.ZH
    if call.verdict is Verdict.SHIP:
        return ("建议上线——改善在统计上显著，且没有护栏指标受损" if zh
                else "ship it — the improvement is statistically significant and no guardrail is harmed")
    if call.verdict is Verdict.ROLL_BACK:
        reasons = []
        if call.significantly_worse:
            reasons.append("恶化在统计上显著" if zh else "the harm is statistically significant")
        if call.harmed_guardrails:
            names = _names(call.harmed_guardrails, lang)
            plural = "s" if len(call.harmed_guardrails) > 1 else ""
            reasons.append(f"护栏指标 {names} 受损，超出容忍范围" if zh
                           else f"it harms the guardrail{plural} {names} beyond the tolerated margin")
        if not reasons:
            return "建议回滚" if zh else "roll back"
        return ("建议回滚——" + "，且".join(reasons)) if zh else "roll back — " + " and ".join(reasons)
    if call.verdict is Verdict.PROVED_NEUTRAL:
        if call.equivalence_margin is None:
            return "无实质差异——效果落在等效区间内，可依据其他因素决定" if zh else (
                "no real difference — the effect lies within the equivalence margin; decide on other grounds")
        margin = "±" + percent(call.equivalence_margin)
        return (f"无实质差异——效果落在 {margin} 的等效区间内，可依据其他因素决定" if zh
                else f"no real difference — the effect lies within the {margin} equivalence margin; decide on other "
                     "grounds")
    if call.waiting:
        return ("继续运行——用户数或运行天数尚不足以得出结论" if zh
                else "keep running — too few users or days for a call yet")
    return "继续运行——结论尚不明确" if zh else "keep running — not yet conclusive"


def _interval(call: Call, lang: Lang) -> str:
    assert call.effect is not None and call.ci_lower is not None and call.ci_upper is not None
    digits = decimals(call.effect, call.ci_lower, call.ci_upper)
    lower = percent(call.ci_lower, signed=True, digits=digits)
    upper = percent(call.ci_upper, signed=True, digits=digits)
    if lang is Lang.ZH:
        name = "可信区间" if call.interval is Interval.CREDIBLE else "置信区间"
        text = f"{level(call.confidence)} {name} {lower} 至 {upper}"
        if call.chance_to_win is not None:
            text += f"，胜过对照组的概率为 {call.chance_to_win:.0%}"
        return f"（{text}）"
    name = "credible interval" if call.interval is Interval.CREDIBLE else "CI"
    text = f"{level(call.confidence)} {name} {lower} to {upper}"
    if call.chance_to_win is not None:
        text += f", {call.chance_to_win:.0%} chance to beat the control"
    return f" ({text})"


def sentence(call: Call, lang: Lang) -> str:
    """The call as one sentence, e.g. "Variant question_title raises click_through by 7.7% (95% CI −1.0% to
    +16.5%): keep running — not yet conclusive." """
    zh = lang is Lang.ZH
    if call.verdict is Verdict.INVALID:
        if zh:
            return (f"变体 {call.variant} 的结果不可信：用户分流比例与计划不符（样本比例失衡）——"
                    "请先查明并修复原因，再解读任何结果。")
        return (f"The results of variant {call.variant} cannot be trusted: users were not split as planned "
                "(sample-ratio mismatch) — find and fix the cause before reading any result.")
    action = _action(call, lang)
    if call.effect is None or call.ci_lower is None or call.ci_upper is None:
        return (f"变体 {call.variant} 对 {call.metric} 的影响暂时无法估计：{action}。" if zh
                else f"The effect of variant {call.variant} on {call.metric} cannot be estimated yet: {action}.")
    size = percent(abs(call.effect), digits=decimals(call.effect, call.ci_lower, call.ci_upper))
    interval = _interval(call, lang)
    if zh:
        if call.effect == 0:
            return f"变体 {call.variant} 未改变 {call.metric}{interval}：{action}。"
        direction = "提升" if call.effect > 0 else "降低"
        return f"变体 {call.variant} 使 {call.metric} {direction} {size}{interval}：{action}。"
    if call.effect == 0:
        return f"Variant {call.variant} leaves {call.metric} unchanged{interval}: {action}."
    direction = "raises" if call.effect > 0 else "lowers"
    return f"Variant {call.variant} {direction} {call.metric} by {size}{interval}: {action}."


def srm_warning(p_value: float | None, lang: Lang) -> str:
    """The red banner of a sample-ratio mismatch."""
    p = "" if p_value is None else f"{p_value:.2g}"
    if lang is Lang.ZH:
        return (f"样本比例失衡（p = {p}）：用户未按配置的权重分流，所有结果都不可信，请先查明原因。" if p
                else "样本比例失衡：用户未按配置的权重分流，所有结果都不可信，请先查明原因。")
    return (f"Sample-ratio mismatch{f' (p = {p})' if p else ''}: users are not split as the weights say, so no "
            "result can be trusted until the cause is found.")


def guardrail_warning(
    metric: str, variant: str, effect: float, ci_lower: float, ci_upper: float, margin: float, lang: Lang
) -> str:
    """The red banner of a guardrail that a treatment harms beyond its margin."""
    digits = decimals(effect, ci_lower, ci_upper)
    lift = percent(effect, signed=True, digits=digits)
    lower, upper = percent(ci_lower, signed=True, digits=digits), percent(ci_upper, signed=True, digits=digits)
    if lang is Lang.ZH:
        return (f"护栏指标 {metric} 被变体 {variant} 损害：{lift}（{lower} 至 {upper}），超出 {percent(margin)} 的"
                "容忍范围。")
    return (f"Guardrail {metric} is harmed by variant {variant}: {lift} ({lower} to {upper}), beyond its "
            f"{percent(margin)} margin.")
