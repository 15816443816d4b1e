"""The report's words other than the calls (services/analyzer/report/verdict.py), in English and Chinese, and the
choice of language for a request."""

from __future__ import annotations

from services.analyzer.report.verdict import Lang

LABELS: dict[str, dict[Lang, str]] = {
    "experiments": {Lang.EN: "Experiments", Lang.ZH: "实验列表"},
    "experiment": {Lang.EN: "Experiment", Lang.ZH: "实验"},
    "name": {Lang.EN: "Name", Lang.ZH: "名称"},
    "status": {Lang.EN: "Status", Lang.ZH: "状态"},
    "phase": {Lang.EN: "Phase", Lang.ZH: "阶段"},
    "users": {Lang.EN: "Users", Lang.ZH: "用户数"},
    "call": {Lang.EN: "Current call", Lang.ZH: "当前结论"},
    "report": {Lang.EN: "Report", Lang.ZH: "报告"},
    "open_report": {Lang.EN: "open", Lang.ZH: "查看"},
    "no_experiments": {Lang.EN: "No experiments yet.", Lang.ZH: "暂无实验。"},
    "no_call": {Lang.EN: "no goal metric", Lang.ZH: "无目标指标"},
    "what_was_tested": {Lang.EN: "What was tested", Lang.ZH: "测试内容"},
    "hypothesis": {Lang.EN: "Hypothesis", Lang.ZH: "假设"},
    "key": {Lang.EN: "Key", Lang.ZH: "实验键"},
    "variants": {Lang.EN: "Variants", Lang.ZH: "变体"},
    "control": {Lang.EN: "control", Lang.ZH: "对照组"},
    "share": {Lang.EN: "share", Lang.ZH: "流量占比"},
    "method": {Lang.EN: "Analysis", Lang.ZH: "分析方法"},
    "the_call": {Lang.EN: "The call", Lang.ZH: "结论"},
    "goal_metric": {Lang.EN: "goal metric", Lang.ZH: "目标指标"},
    "no_goal": {
        Lang.EN: "This experiment declares no goal metric, so no call is made: read the metrics below.",
        Lang.ZH: "该实验未声明目标指标，因此不给出结论：请参阅下方各项指标。",
    },
    "metrics": {Lang.EN: "Metrics", Lang.ZH: "指标"},
    "metric": {Lang.EN: "Metric", Lang.ZH: "指标"},
    "role": {Lang.EN: "Role", Lang.ZH: "角色"},
    "variant": {Lang.EN: "Variant", Lang.ZH: "变体"},
    "control_mean": {Lang.EN: "Control mean", Lang.ZH: "对照组均值"},
    "variant_mean": {Lang.EN: "Variant mean", Lang.ZH: "变体均值"},
    "lift": {Lang.EN: "Lift", Lang.ZH: "提升"},
    "interval": {Lang.EN: "interval", Lang.ZH: "区间"},
    "p_value": {Lang.EN: "p", Lang.ZH: "p 值"},
    "adjusted_p": {Lang.EN: "Adjusted p", Lang.ZH: "校正后 p 值"},
    "cuped_variance": {Lang.EN: "CUPED: variance −", Lang.ZH: "CUPED：方差 −"},
    "against_holdout": {Lang.EN: "Against the holdout", Lang.ZH: "与保留组对比"},
    "holdout_users": {Lang.EN: "Held-out users", Lang.ZH: "保留组用户"},
    "holdout_share": {Lang.EN: "expected share", Lang.ZH: "预期占比"},
    "holdout_mean": {Lang.EN: "Holdout mean", Lang.ZH: "保留组均值"},
    "split_check": {Lang.EN: "Split check", Lang.ZH: "分流检查"},
    "charts": {Lang.EN: "Charts", Lang.ZH: "图表"},
    "forest_title": {Lang.EN: "Relative effect of each metric, with its CI", Lang.ZH: "各指标的相对效果及置信区间"},
    "cumulative_title": {Lang.EN: "Cumulative effect over time", Lang.ZH: "累计效果随时间变化"},
    "users_title": {Lang.EN: "Users per variant over time", Lang.ZH: "各变体用户数随时间变化"},
    "plan": {Lang.EN: "plan", Lang.ZH: "计划"},
    "no_effect": {Lang.EN: "no effect", Lang.ZH: "无效果"},
    "all_vs_holdout": {Lang.EN: "all variants vs holdout", Lang.ZH: "全部变体 对比 保留组"},
    "no_comparisons": {Lang.EN: "No effect can be estimated yet.", Lang.ZH: "暂时无法估计效果。"},
    "no_snapshots": {
        Lang.EN: "No snapshots yet: the analyzer takes one every hour, or on POST /v1/experiments/{key}/snapshots.",
        Lang.ZH: "暂无快照：分析服务每小时记录一次，也可调用 POST /v1/experiments/{key}/snapshots 立即记录。",
    },
    "charts_unavailable": {
        Lang.EN: "Charts are unavailable: the chart library is not installed on the server (run `make install`).",
        Lang.ZH: "图表不可用：服务器未安装图表库（请运行 `make install`）。",
    },
    "segments": {Lang.EN: "Segments", Lang.ZH: "细分"},
    "segment": {Lang.EN: "Segment", Lang.ZH: "细分值"},
    "no_segment_data": {Lang.EN: "No data in this dimension yet.", Lang.ZH: "该维度暂无数据。"},
    "segment_note": {
        Lang.EN: "p-values are adjusted across every segment, metric and variant of the table.",
        Lang.ZH: "p 值已在表内所有细分、指标与变体之间做多重比较校正。",
    },
    "mismatch": {Lang.EN: "mismatch", Lang.ZH: "失衡"},
    "ok": {Lang.EN: "ok", Lang.ZH: "正常"},
    "all_experiments": {Lang.EN: "All experiments", Lang.ZH: "全部实验"},
    "not_found": {Lang.EN: "Not found", Lang.ZH: "未找到"},
    "unauthorized": {
        Lang.EN: "Sign in with the read key as the password (any user name).",
        Lang.ZH: "请以读取密钥作为密码登录（用户名任意）。",
    },
    "forbidden": {Lang.EN: "This key may not read results.", Lang.ZH: "该密钥无权读取结果。"},
    "error": {Lang.EN: "Error", Lang.ZH: "错误"},
}

STATUS_LABELS: dict[str, dict[Lang, str]] = {
    "draft": {Lang.EN: "draft", Lang.ZH: "草稿"},
    "running": {Lang.EN: "running", Lang.ZH: "运行中"},
    "paused": {Lang.EN: "paused", Lang.ZH: "已暂停"},
    "stopped": {Lang.EN: "stopped", Lang.ZH: "已停止"},
    "shipped": {Lang.EN: "shipped", Lang.ZH: "已上线"},
}

ROLE_LABELS: dict[str, dict[Lang, str]] = {
    "goal": {Lang.EN: "goal", Lang.ZH: "目标"},
    "guardrail": {Lang.EN: "guardrail", Lang.ZH: "护栏"},
    "secondary": {Lang.EN: "secondary", Lang.ZH: "次要"},
}


def label(name: str, lang: Lang) -> str:
    return LABELS[name][lang]


def translated(table: dict[str, dict[Lang, str]], value: str, lang: Lang) -> str:
    """``value`` in ``lang`` from ``table``; as it is when the table does not know it."""
    return table.get(value, {}).get(lang, value)


def choose_lang(query: str | None, accept_language: str | None) -> Lang:
    """``?lang=`` when it names a language of the report; else the reader's most preferred of zh and en in
    ``Accept-Language`` (any ``zh-*`` counts as zh); else English."""
    if query in (Lang.EN.value, Lang.ZH.value):
        return Lang(query)
    best: tuple[float, int, Lang] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, *params = (piece.strip() for piece in part.split(";"))
        primary = tag.lower().split("-")[0]
        if primary not in (Lang.EN.value, Lang.ZH.value):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        # Highest quality wins; between equals, the one listed first.
        if quality > 0 and (best is None or (-quality, position) < (-best[0], best[1])):
            best = (quality, position, Lang(primary))
    return Lang.EN if best is None else best[2]
