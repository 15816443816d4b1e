"""The plain-language calls and warnings of the report, in English and Chinese. Every expected sentence is written
out by hand from the wording the report promises (README "Report")."""

from __future__ import annotations

import pytest

from services.analyzer.report.labels import choose_lang
from services.analyzer.report.verdict import (
    Call,
    Interval,
    Lang,
    guardrail_warning,
    level,
    percent,
    sentence,
    srm_warning,
    verdict_label,
)
from services.analyzer.stats.decision import Verdict

EN, ZH = Lang.EN, Lang.ZH


def _call(verdict: Verdict, effect: float | None, lower: float | None, upper: float | None, **extra: object) -> Call:
    return Call(variant="b", verdict=verdict, metric="clicks", effect=effect, ci_lower=lower, ci_upper=upper,
                **extra)  # type: ignore[arg-type]


def test_keep_running_while_inconclusive_reads_like_the_issue_example() -> None:
    call = Call(variant="question_title", verdict=Verdict.KEEP_RUNNING, metric="click_through", effect=0.0771,
                ci_lower=-0.0104, ci_upper=0.1652)
    assert sentence(call, EN) == ("Variant question_title raises click_through by 7.7% (95% CI −1.0% to +16.5%): "
                                  "keep running — not yet conclusive.")
    assert sentence(call, ZH) == ("变体 question_title 使 click_through 提升 7.7%（95% 置信区间 −1.0% 至 +16.5%）："
                                  "继续运行——结论尚不明确。")


@pytest.mark.parametrize(("call", "english", "chinese"), [
    (
        _call(Verdict.KEEP_RUNNING, 0.021, -0.05, 0.092, waiting=True),
        "Variant b raises clicks by 2.1% (95% CI −5.0% to +9.2%): keep running — too few users or days for a call "
        "yet.",
        "变体 b 使 clicks 提升 2.1%（95% 置信区间 −5.0% 至 +9.2%）：继续运行——用户数或运行天数尚不足以得出结论。",
    ),
    (
        _call(Verdict.SHIP, 0.052, 0.013, 0.091),
        "Variant b raises clicks by 5.2% (95% CI +1.3% to +9.1%): ship it — the improvement is statistically "
        "significant and no guardrail is harmed.",
        "变体 b 使 clicks 提升 5.2%（95% 置信区间 +1.3% 至 +9.1%）：建议上线——改善在统计上显著，且没有护栏指标受损。",
    ),
    (
        _call(Verdict.ROLL_BACK, -0.064, -0.101, -0.027),
        "Variant b lowers clicks by 6.4% (95% CI −10.1% to −2.7%): roll back — the harm is statistically "
        "significant.",
        "变体 b 使 clicks 降低 6.4%（95% 置信区间 −10.1% 至 −2.7%）：建议回滚——恶化在统计上显著。",
    ),
    (
        _call(Verdict.ROLL_BACK, 0.03, -0.01, 0.07, harmed_guardrails=("reading_minutes",)),
        "Variant b raises clicks by 3.0% (95% CI −1.0% to +7.0%): roll back — it harms the guardrail "
        "reading_minutes beyond the tolerated margin.",
        "变体 b 使 clicks 提升 3.0%（95% 置信区间 −1.0% 至 +7.0%）：建议回滚——"
        "护栏指标 reading_minutes 受损，超出容忍范围。",
    ),
    (
        _call(Verdict.ROLL_BACK, -0.05, -0.09, -0.01, harmed_guardrails=("latency", "refunds")),
        "Variant b lowers clicks by 5.0% (95% CI −9.0% to −1.0%): roll back — the harm is statistically "
        "significant and it harms the guardrails latency and refunds beyond the tolerated margin.",
        "变体 b 使 clicks 降低 5.0%（95% 置信区间 −9.0% 至 −1.0%）：建议回滚——恶化在统计上显著，"
        "且护栏指标 latency、refunds 受损，超出容忍范围。",
    ),
    (
        _call(Verdict.PROVED_NEUTRAL, 0.002, -0.008, 0.012, equivalence_margin=0.02),
        "Variant b raises clicks by 0.2% (95% CI −0.8% to +1.2%): no real difference — the effect lies within the "
        "±2.0% equivalence margin; decide on other grounds.",
        "变体 b 使 clicks 提升 0.2%（95% 置信区间 −0.8% 至 +1.2%）：无实质差异——"
        "效果落在 ±2.0% 的等效区间内，可依据其他因素决定。",
    ),
    (
        _call(Verdict.INVALID, 0.2, 0.1, 0.3),
        "The results of variant b cannot be trusted: users were not split as planned (sample-ratio mismatch) — find "
        "and fix the cause before reading any result.",
        "变体 b 的结果不可信：用户分流比例与计划不符（样本比例失衡）——请先查明并修复原因，再解读任何结果。",
    ),
], ids=["keep_running-waiting", "ship", "roll_back-goal", "roll_back-guardrail", "roll_back-both", "proved_neutral",
        "invalid"])
def test_each_verdict_in_both_languages(call: Call, english: str, chinese: str) -> None:
    assert sentence(call, EN) == english
    assert sentence(call, ZH) == chinese


def test_a_bayesian_call_names_a_credible_interval_and_the_chance_to_win() -> None:
    call = _call(Verdict.SHIP, 0.052, 0.013, 0.091, confidence=0.9, interval=Interval.CREDIBLE, chance_to_win=0.93)
    assert sentence(call, EN) == ("Variant b raises clicks by 5.2% (90% credible interval +1.3% to +9.1%, 93% chance "
                                  "to beat the control): ship it — the improvement is statistically significant and "
                                  "no guardrail is harmed.")
    assert "（90% 可信区间 +1.3% 至 +9.1%，胜过对照组的概率为 93%）" in sentence(call, ZH)


def test_an_effect_that_cannot_be_estimated_says_so() -> None:
    call = _call(Verdict.KEEP_RUNNING, None, None, None, waiting=True)
    assert sentence(call, EN) == ("The effect of variant b on clicks cannot be estimated yet: keep running — too few "
                                  "users or days for a call yet.")
    assert sentence(call, ZH) == "变体 b 对 clicks 的影响暂时无法估计：继续运行——用户数或运行天数尚不足以得出结论。"


def test_small_effects_get_two_decimals_and_no_change_is_said_plainly() -> None:
    small = _call(Verdict.KEEP_RUNNING, 0.0004, -0.0021, 0.0029)
    assert sentence(small, EN).startswith("Variant b raises clicks by 0.04% (95% CI −0.21% to +0.29%)")
    flat = _call(Verdict.KEEP_RUNNING, 0.0, -0.02, 0.02)
    assert sentence(flat, EN).startswith("Variant b leaves clicks unchanged (95% CI −2.0% to +2.0%): keep running")
    assert sentence(flat, ZH).startswith("变体 b 未改变 clicks（95% 置信区间 −2.0% 至 +2.0%）：继续运行")


def test_harm_follows_the_direction_of_a_lower_is_better_metric() -> None:
    fewer_refunds = _call(Verdict.SHIP, -0.05, -0.08, -0.02, higher_is_better=False)
    more_refunds = _call(Verdict.ROLL_BACK, 0.05, 0.02, 0.08, higher_is_better=False)
    assert not fewer_refunds.significantly_worse and more_refunds.significantly_worse
    assert sentence(fewer_refunds, EN).startswith("Variant b lowers clicks by 5.0% (95% CI −8.0% to −2.0%): ship it")
    assert sentence(more_refunds, EN).endswith("roll back — the harm is statistically significant.")


def test_percent_and_level() -> None:
    assert [percent(0.0771), percent(-0.0104, signed=True), percent(0.1652, signed=True)] == ["7.7%", "−1.0%",
                                                                                              "+16.5%"]
    assert percent(0.0004, signed=True) == "+0.04%" and percent(0.0) == "0.0%"
    assert [level(0.95), level(0.9), level(0.995), level(1 - 0.05)] == ["95%", "90%", "99.5%", "95%"]


def test_the_warnings_in_both_languages() -> None:
    assert srm_warning(3.2e-12, EN) == ("Sample-ratio mismatch (p = 3.2e-12): users are not split as the weights say, "
                                        "so no result can be trusted until the cause is found.")
    assert srm_warning(3.2e-12, ZH) == ("样本比例失衡（p = 3.2e-12）：用户未按配置的权重分流，"
                                        "所有结果都不可信，请先查明原因。")
    assert guardrail_warning("reading_minutes", "b", -0.061, -0.09, -0.032, 0.02, EN) == (
        "Guardrail reading_minutes is harmed by variant b: −6.1% (−9.0% to −3.2%), beyond its 2.0% margin.")
    assert guardrail_warning("reading_minutes", "b", -0.061, -0.09, -0.032, 0.02, ZH) == (
        "护栏指标 reading_minutes 被变体 b 损害：−6.1%（−9.0% 至 −3.2%），超出 2.0% 的容忍范围。")


def test_verdict_labels() -> None:
    assert [verdict_label(v.value, EN) for v in Verdict] == [
        "Ship", "Roll back", "Keep running", "No real difference", "Invalid (split mismatch)"]
    assert [verdict_label(v.value, ZH) for v in Verdict] == [
        "上线", "回滚", "继续运行", "无实质差异", "无效（分流失衡）"]
    assert verdict_label("something_new", ZH) == "something_new"


@pytest.mark.parametrize(("query", "header", "expected"), [
    ("zh", "en-US,en;q=0.9", ZH),
    ("en", "zh-CN,zh;q=0.9", EN),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", ZH),
    (None, "zh-TW", ZH),
    (None, "ZH", ZH),
    (None, "en-US,en;q=0.9,zh-CN;q=0.8", EN),
    (None, "fr-FR, zh;q=0.5", ZH),  # French is not offered: Chinese is the best of what is
    (None, "en;q=0.4, zh;q=0.7", ZH),
    (None, "zh;q=0, en;q=0.1", EN),  # q=0 means "not this one"
    (None, "fr", EN),
    (None, None, EN),
    ("fr", "zh-CN", ZH),  # a language the report does not have falls back to the header
    (None, "zh;q=nonsense, en", EN),
])
def test_the_language_comes_from_the_query_then_accept_language(
    query: str | None, header: str | None, expected: Lang
) -> None:
    assert choose_lang(query, header) is expected
