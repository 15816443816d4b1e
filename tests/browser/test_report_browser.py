"""The report in a real headless Chromium: the analyzer under uvicorn on the test stack's Redis, an experiment with
statistics, two snapshots and segment statistics; the page must run without console errors, state the call in both
languages and draw every chart (ECharts' SVG renderer, so the dumped DOM holds the drawn paths)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import httpx
from redis.asyncio import Redis

from services.analyzer.config import AnalyzerSettings
from services.analyzer.stats import compare
from splitstream.experiment import AnalysisPlan, Metric, MetricRole, MetricType
from splitstream.registry import ExperimentRegistry
from splitstream.statistics import Proportion
from tests.browser.chromium import dump_dom, ensure_chromium, find_element, screenshot
from tests.conftest import TEST_KEYS, auth
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
KEY = "browser-titles"
CLICKS = Metric(key="click_through", type=MetricType.BINOMIAL, event="title_click", role=MetricRole.GOAL)
READING = Metric(key="reading_minutes", type=MetricType.MEAN, event="read", role=MetricRole.GUARDRAIL, margin=0.05)
PLANNED_USERS = 12_000
# Per snapshot and variant: users, clicks, Σ reading minutes, Σ minutes².
STEPS = [
    {"control_title": (6_000, 600, 18_000, 114_000), "question_title": (6_000, 640, 18_100, 115_000)},
    {"control_title": (10_000, 1_000, 30_000, 190_000), "question_title": (10_000, 1_077, 30_150, 191_500)},
]
SEGMENTS = {"app": ((6_000, 600), (6_000, 660)), "web": ((4_000, 400), (4_000, 417))}
# Paths that the data alone draw, at least: the forest plot's whisker (3 strokes) and point per metric × treatment;
# the effect line, its band and its two points; two variants' lines and points and the plan's line.
MIN_PATHS = {"forest": 2 * 4, "cumulative": 4, "users": 2 * 3 + 1}


def pct(value: float, signed: bool = True) -> str:
    text = f"{value * 100:+.1f}%" if signed else f"{abs(value) * 100:.1f}%"
    return text.replace("-", "−")


async def _store(
    base: str, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment, write_stats: WriteStats
) -> None:
    created = await create_experiment(KEY, [("control_title", 1), ("question_title", 1)], [CLICKS, READING],
                                      AnalysisPlan(planned_users_per_variant=PLANNED_USERS), days_running=10)
    experiment = created.model_copy(update={
        "name": "Question titles", "hypothesis": "A question in the title makes readers click.",
        "segments": ["channel"],
    })
    await ExperimentRegistry(redis, settings.redis_keys).replace(experiment, created)
    async with httpx.AsyncClient(base_url=base) as http:
        for step in STEPS:
            for variant, (users, clicks, minutes, squares) in step.items():
                await write_stats(KEY, variant, {
                    "users": users, "click_through:sum": clicks, "click_through:sumsq": clicks,
                    "reading_minutes:sum": minutes, "reading_minutes:sumsq": squares,
                })
            answer = await http.post(f"/v1/experiments/{KEY}/snapshots", headers=auth("admin"))
            assert answer.status_code == 201, answer.text
    keys = settings.redis_keys
    for value, split in SEGMENTS.items():
        await redis.sadd(keys.segment_values(KEY, "channel"), value)
        for variant, (users, clicks) in zip(("control_title", "question_title"), split, strict=True):
            await redis.hset(keys.segment_stats(KEY, "channel", value, variant),
                             mapping={"users": users, "click_through:sum": clicks, "click_through:sumsq": clicks})


def _expected_calls() -> dict[str, str]:
    last = STEPS[-1]
    lift = compare(Proportion(*last["control_title"][:2]), Proportion(*last["question_title"][:2])).relative
    assert lift.effect is not None and lift.ci_lower is not None and lift.ci_upper is not None
    size, lower, upper = pct(lift.effect, signed=False), pct(lift.ci_lower), pct(lift.ci_upper)
    return {
        "en": f"Variant question_title raises click_through by {size} (95% CI {lower} to {upper}): keep running — "
              "not yet conclusive.",
        "zh": f"变体 question_title 使 click_through 提升 {size}（95% 置信区间 {lower} 至 {upper}）："
              "继续运行——结论尚不明确。",
    }


async def test_the_report_runs_clean_and_draws_every_chart_in_chromium(
    live_analyzer: str, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment,
    write_stats: WriteStats,
) -> None:
    chromium = ensure_chromium()
    await _store(live_analyzer, redis, settings, create_experiment, write_stats)
    # Chromium sends URL credentials on the top-level navigation once the page answers 401 with a Basic challenge.
    signed_in = live_analyzer.replace("http://", f"http://reader:{quote(TEST_KEYS['read_key'], safe='')}@")

    for lang, call in _expected_calls().items():
        url = f"{signed_in}/experiments/{KEY}?lang={lang}"
        run = await asyncio.to_thread(dump_dom, chromium, url)

        assert run.console_problems() == [], run.stderr[-3000:]
        body = find_element(run.stdout, tag="body")
        assert body.attributes.get("data-errors") == "[]", body.attributes
        assert body.attributes.get("data-charts") == "drawn", body.attributes
        assert call in "".join(find_element(run.stdout, id="verdict").text)
        for chart, minimum in MIN_PATHS.items():
            drawn = find_element(run.stdout, id=f"chart-{chart}")
            assert drawn.tags["svg"] >= 1, f"{lang}: no SVG in chart-{chart}"
            print(f"{lang} chart-{chart}: {drawn.tags['path']} paths")
            assert drawn.tags["path"] >= minimum, f"{lang}: chart-{chart} drew {drawn.tags['path']} paths"
        assert f"{PLANNED_USERS:,}" in "".join(find_element(run.stdout, id="chart-users").text)
        segments = find_element(run.stdout, tag="div", **{"data-dimension": "channel"})
        assert {"app", "web"} <= set(segments.text)

        picture = ARTIFACTS / f"report-{lang}.png"
        shot = await asyncio.to_thread(screenshot, chromium, url, picture)
        assert shot.console_problems() == [], shot.stderr[-3000:]
        assert picture.is_file() and picture.stat().st_size > 10_000, picture
        print(f"screenshot: {picture}")


async def test_chromium_reports_uncaught_errors_where_the_test_looks() -> None:
    """The console check above can fail: an uncaught error does reach Chromium's stderr."""
    chromium = ensure_chromium()
    page = "data:text/html,<body><script>throw new Error('deliberate')</script></body>"
    run = await asyncio.to_thread(dump_dom, chromium, page)
    assert any("Uncaught Error: deliberate" in line for line in run.console_problems()), run.stderr[-3000:]

