"""The HTML report (GET /experiments, GET /experiments/{key}) against a real Redis holding hand-written statistics."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.analyzer.config import AnalyzerSettings
from services.analyzer.report import routes as report_routes
from services.analyzer.stats import compare
from splitstream.experiment import Experiment, Metric, MetricRole, MetricType
from splitstream.registry import ExperimentRegistry
from splitstream.statistics import Proportion, SampleMoments
from tests.conftest import TEST_KEYS, auth
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

CLICKS = Metric(key="click_through", type=MetricType.BINOMIAL, event="title_click", role=MetricRole.GOAL)
READING = Metric(key="reading_minutes", type=MetricType.MEAN, event="read", role=MetricRole.GUARDRAIL, margin=0.02)
VARIANTS = [("control_title", 1.0), ("question_title", 1.0)]
# users and clicks per variant: a 7.7% lift whose interval still straddles zero
BALANCED = {"control_title": (10_000, 1_000), "question_title": (10_000, 1_077)}


def basic(key: str, user: str = "lead") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def pct(value: float, signed: bool = True) -> str:
    """The report's percentages, written independently: one decimal, a true minus sign."""
    text = f"{value * 100:+.1f}%" if signed else f"{abs(value) * 100:.1f}%"
    return text.replace("-", "−")


async def store(
    redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment, key: str, **changes: Any
) -> Experiment:
    """An experiment running for ten days (past the default minimum of seven), with ``changes`` applied."""
    metrics = changes.pop("metrics", [CLICKS])
    created = await create_experiment(key, VARIANTS, metrics, days_running=10)
    experiment = created.model_copy(update=changes)
    await ExperimentRegistry(redis, settings.redis_keys).replace(experiment, created)
    return experiment


async def write_clicks(write_stats: WriteStats, key: str, split: dict[str, tuple[int, int]]) -> None:
    for variant, (users, clicks) in split.items():
        await write_stats(key, variant, {"users": users, "click_through:sum": clicks, "click_through:sumsq": clicks})


@pytest.fixture
async def titles(
    redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment, write_stats: WriteStats
) -> str:
    await store(redis, settings, create_experiment, "titles", name="Question titles",
                hypothesis="A question in the title makes readers click.")
    await write_clicks(write_stats, "titles", BALANCED)
    return "titles"


def embedded_data(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert match, "the page embeds no data block"
    return json.loads(match.group(1))


async def test_the_report_states_the_call_in_english_and_in_chinese(client: httpx.AsyncClient, titles: str) -> None:
    lift = compare(Proportion(*BALANCED["control_title"]), Proportion(*BALANCED["question_title"])).relative
    assert lift.effect is not None and lift.ci_lower is not None and lift.ci_upper is not None
    interval = (pct(lift.ci_lower), pct(lift.ci_upper))

    english = await client.get(f"/experiments/{titles}", params={"lang": "en"}, headers=auth("read"))
    chinese = await client.get(f"/experiments/{titles}", params={"lang": "zh"}, headers=auth("read"))

    assert english.status_code == 200 and english.headers["content-type"].startswith("text/html")
    assert (f"Variant question_title raises click_through by {pct(lift.effect, signed=False)} (95% CI "
            f"{interval[0]} to {interval[1]}): keep running — not yet conclusive.") in english.text
    assert (f"变体 question_title 使 click_through 提升 {pct(lift.effect, signed=False)}（95% 置信区间 "
            f"{interval[0]} 至 {interval[1]}）：继续运行——结论尚不明确。") in chinese.text
    assert '<html lang="en">' in english.text and '<html lang="zh-CN">' in chinese.text
    for page in (english.text, chinese.text):
        assert "Question titles" in page and "A question in the title makes readers click." in page
        assert 'class="banner"' not in page  # a 1:1 split of 10,000 each: no mismatch
    assert "script-src 'self'" in english.headers["content-security-policy"]


@pytest.mark.parametrize(("accept_language", "expected"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "继续运行——结论尚不明确"),
    ("en-US,en;q=0.9,zh-CN;q=0.8", "keep running — not yet conclusive"),
    ("fr-FR", "keep running — not yet conclusive"),
])
async def test_accept_language_picks_the_language(
    client: httpx.AsyncClient, titles: str, accept_language: str, expected: str
) -> None:
    page = await client.get(f"/experiments/{titles}", headers={**auth("read"), "Accept-Language": accept_language})
    assert expected in page.text
    overridden = await client.get(f"/experiments/{titles}", params={"lang": "en"},
                                  headers={**auth("read"), "Accept-Language": "zh-CN"})
    assert "keep running — not yet conclusive" in overridden.text


async def test_a_skewed_split_raises_the_red_banner(
    client: httpx.AsyncClient, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment,
    write_stats: WriteStats,
) -> None:
    await store(redis, settings, create_experiment, "skewed")
    await write_clicks(write_stats, "skewed", {"control_title": (10_000, 1_000), "question_title": (11_000, 1_100)})

    english = (await client.get("/experiments/skewed?lang=en", headers=auth("read"))).text
    chinese = (await client.get("/experiments/skewed?lang=zh", headers=auth("read"))).text

    assert english.count('class="banner"') == 1 and "Sample-ratio mismatch (p = " in english
    assert "cannot be trusted: users were not split as planned" in english
    assert "样本比例失衡（p = " in chinese


async def test_a_harmed_guardrail_raises_the_red_banner_and_the_call_names_it(
    client: httpx.AsyncClient, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment,
    write_stats: WriteStats,
) -> None:
    await store(redis, settings, create_experiment, "harm", metrics=[CLICKS, READING])
    # Reading time falls from 3.0 to 2.7 minutes a user (−10%, far past the 2% margin), clicks hardly move.
    # Σy² = n (mean² + 1): a per-user variance of about one minute².
    for variant, (users, clicks, minutes, squares) in {"control_title": (10_000, 1_000, 30_000, 100_000),
                                                       "question_title": (10_000, 1_010, 27_000, 82_900)}.items():
        await write_stats("harm", variant, {
            "users": users, "click_through:sum": clicks, "click_through:sumsq": clicks,
            "reading_minutes:sum": minutes, "reading_minutes:sumsq": squares,
        })
    reading = compare(SampleMoments(10_000, 30_000, 100_000), SampleMoments(10_000, 27_000, 82_900)).relative
    assert reading.effect is not None and reading.ci_lower is not None and reading.ci_upper is not None

    page = (await client.get("/experiments/harm?lang=en", headers=auth("read"))).text

    assert (f"Guardrail reading_minutes is harmed by variant question_title: {pct(reading.effect)} "
            f"({pct(reading.ci_lower)} to {pct(reading.ci_upper)}), beyond its 2.0% margin.") in page
    assert "roll back — it harms the guardrail reading_minutes beyond the tolerated margin." in page
    assert "护栏指标 reading_minutes 被变体 question_title 损害" in (
        await client.get("/experiments/harm?lang=zh", headers=auth("read"))).text


async def test_user_data_is_escaped(
    client: httpx.AsyncClient, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment,
    write_stats: WriteStats,
) -> None:
    await store(redis, settings, create_experiment, "hostile", name="<script>alert('name')</script>",
                hypothesis='"quoted" & <b>bold</b>', segments=["channel"])
    await write_clicks(write_stats, "hostile", BALANCED)
    keys = settings.redis_keys
    hostile_value = "</script><img src=x onerror=alert(1)>"
    await redis.sadd(keys.segment_values("hostile", "channel"), hostile_value)
    for variant, (users, clicks) in BALANCED.items():
        await redis.hset(keys.segment_stats("hostile", "channel", hostile_value, variant),
                         mapping={"users": users, "click_through:sum": clicks, "click_through:sumsq": clicks})

    page = (await client.get("/experiments/hostile", headers=auth("read"))).text
    listing = (await client.get("/experiments", headers=auth("read"))).text

    for text in (page, listing):
        assert "<script>alert" not in text and "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in text
    assert "&quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<img" not in page and "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # Our own script tags and the data block are the only script elements.
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/report.js">',
                                                  '<script type="application/json" id="report-data">',
                                                  '<script src="/static/echarts.min.js">']


async def test_pages_ask_for_the_read_key_by_basic_auth(client: httpx.AsyncClient, titles: str) -> None:
    for path in ("/experiments", f"/experiments/{titles}"):
        missing = await client.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == 'Basic realm="SplitStream"'
        assert missing.headers["content-type"].startswith("text/html")
        assert "read key as the password" in missing.text
        wrong = await client.get(path, headers=basic("not-a-key"))
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == 'Basic realm="SplitStream"'
        assert (await client.get(path, headers=basic(TEST_KEYS["ingest_key"]))).status_code == 403
        for key in (TEST_KEYS["read_key"], TEST_KEYS["admin_key"]):
            assert (await client.get(path, headers=basic(key, user="any one"))).status_code == 200
        # A read key never counts in the URL (it would end up in access logs).
        assert (await client.get(path, params={"api_key": TEST_KEYS["read_key"]})).status_code == 401


async def test_an_unknown_experiment_is_a_404_page(client: httpx.AsyncClient) -> None:
    for key, shown in (("nope", "nope"), ("<b>x", "&lt;b&gt;x")):
        answer = await client.get(f"/experiments/{key}", headers=auth("read"))
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
        assert f"no experiment &#x27;{shown}&#x27;" in answer.text


async def test_the_list_shows_every_experiment_with_its_call_and_a_link(
    client: httpx.AsyncClient, titles: str, redis: Redis, settings: AnalyzerSettings,
    create_experiment: CreateExperiment,
) -> None:
    await store(redis, settings, create_experiment, "empty")

    english = (await client.get("/experiments", headers=auth("read"))).text
    chinese = (await client.get("/experiments", headers={**auth("read"), "Accept-Language": "zh-CN"})).text

    assert english.count('<a href="/experiments/titles?lang=en">') == 2
    assert '<a href="/experiments/empty?lang=en">' in english
    assert "Question titles" in english and "control_title 10,000 · question_title 10,000" in english
    assert "question_title: Keep running" in english and "running" in english
    assert "question_title：继续运行" in chinese and "运行中" in chinese


async def test_the_page_embeds_its_chart_data(
    client: httpx.AsyncClient, titles: str, write_stats: WriteStats, redis: Redis, settings: AnalyzerSettings
) -> None:
    assert (await client.post(f"/v1/experiments/{titles}/snapshots", headers=auth("admin"))).status_code == 201
    await write_clicks(write_stats, titles, {"control_title": (12_000, 1_200), "question_title": (12_050, 1_300)})
    assert (await client.post(f"/v1/experiments/{titles}/snapshots", headers=auth("admin"))).status_code == 201
    api = (await client.get(f"/v1/experiments/{titles}/results", headers=auth("read"))).json()
    series = (await client.get(f"/v1/experiments/{titles}/timeseries", headers=auth("read"))).json()

    data = embedded_data((await client.get(f"/experiments/{titles}", headers=auth("read"))).text)

    [comparison] = data["metrics"][0]["comparisons"]
    [expected] = api["metrics"][0]["comparisons"]
    assert {name: comparison[name] for name in ("variant", "effect", "ci_lower", "ci_upper")} == {
        name: expected[name] for name in ("variant", "effect", "ci_lower", "ci_upper")}
    assert data["points"] == series["points"] and len(data["points"]) == 2
    assert [point["users"]["question_title"] for point in data["points"]] == [10_000, 12_050]
    assert data["variants"] == ["control_title", "question_title"] and data["chart_metric"] == "click_through"


async def test_segment_tables_give_lift_interval_and_adjusted_p(
    client: httpx.AsyncClient, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment,
    write_stats: WriteStats,
) -> None:
    await store(redis, settings, create_experiment, "segmented", segments=["channel", "is_new"])
    await write_clicks(write_stats, "segmented", BALANCED)
    keys = settings.redis_keys
    for value, split in {"app": ((6_000, 600), (6_000, 690)), "web": ((4_000, 400), (4_000, 387))}.items():
        await redis.sadd(keys.segment_values("segmented", "channel"), value)
        for variant, (users, clicks) in zip(("control_title", "question_title"), split, strict=True):
            await redis.hset(keys.segment_stats("segmented", "channel", value, variant),
                             mapping={"users": users, "click_through:sum": clicks, "click_through:sumsq": clicks})
    api = (await client.get("/v1/experiments/segmented/results", params={"segment": "channel"},
                            headers=auth("read"))).json()

    page = (await client.get("/experiments/segmented?lang=en", headers=auth("read"))).text

    table = page[page.index('data-dimension="channel"'):page.index("</table>", page.index('data-dimension="channel"'))]
    for segment in api["segments"]:
        [comparison] = segment["metrics"][0]["comparisons"]
        row = table[table.index(f"<td>{segment['value']}</td>"):]
        row = row[:row.index("</tr>")]
        assert pct(comparison["effect"]) in row
        assert f"{pct(comparison['ci_lower'])} … {pct(comparison['ci_upper'])}" in row
        assert f"{comparison['adjusted_p_value']:.3g}" in row
    assert 'data-dimension="is_new"' in page and "No data in this dimension yet." in page


async def test_without_the_chart_library_the_report_keeps_its_text_and_says_so(
    client: httpx.AsyncClient, titles: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(report_routes, "ECHARTS_PATH", tmp_path / "missing" / "echarts.min.js")
    with capture_logs() as logs:
        page = (await client.get(f"/experiments/{titles}?lang=en", headers=auth("read"))).text
    assert "keep running — not yet conclusive" in page
    assert "Charts are unavailable" in page and "echarts.min.js" not in page and 'class="chart"' not in page
    assert any(entry["event"] == "echarts_missing" and entry["log_level"] == "warning" for entry in logs)
    assert (await client.get("/static/echarts.min.js")).status_code == 404


async def test_the_scripts_are_served_without_a_key(client: httpx.AsyncClient) -> None:
    ours = await client.get("/static/report.js")
    library = await client.get("/static/echarts.min.js")
    assert ours.status_code == 200 and ours.headers["content-type"].startswith("text/javascript")
    assert "report-data" in ours.text and "data-errors" in ours.text
    assert library.status_code == 200 and library.headers["content-type"].startswith("text/javascript")
    assert len(library.content) > 500_000 and b"echarts" in library.content[:2000].lower()
