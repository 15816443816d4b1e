"""The results against the held-out users: each variant and the pooled campaign compared with the ``(holdout)`` arm
the collector folds, with a sample-ratio check against the holdouts' share."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.analyzer.config import AnalyzerSettings
from services.analyzer.stats import compare, srm_check
from splitstream.experiment import HOLDOUT_ARM, Metric, MetricType
from splitstream.layers import Holdout, HoldoutScope
from splitstream.statistics import Proportion, SampleMoments
from tests.conftest import TEST_KEYS
from tests.service.analyzer.conftest import CreateExperiment, WriteStats

READ = {"Authorization": f"Bearer {TEST_KEYS['read_key']}"}
METRICS = [Metric(key="converted", type=MetricType.BINOMIAL, event="purchase", cuped=False),
           Metric(key="revenue", type=MetricType.MEAN, event="purchase", cuped=False)]
ARMS = {  # users, conversions, Σ revenue, Σ revenue²
    "copy_a": (900, 99, 2970.0, 41000.0),
    "copy_b": (905, 120, 3900.0, 52000.0),
    HOLDOUT_ARM: (195, 12, 380.0, 6100.0),
}


async def _store_holdouts(redis: Redis, settings: AnalyzerSettings, *holdouts: Holdout) -> None:
    await redis.hset(settings.redis_keys.holdouts,
                     mapping={holdout.key: holdout.model_dump_json() for holdout in holdouts})


async def _write_arms(write_stats: WriteStats, key: str) -> None:
    for arm, (users, conversions, total, squares) in ARMS.items():
        await write_stats(key, arm, {"users": users, "converted:sum": conversions, "converted:sumsq": conversions,
                                     "revenue:sum": total, "revenue:sumsq": squares})


def _proportion(*arms: str) -> Proportion:
    return Proportion(sum(ARMS[a][0] for a in arms), sum(ARMS[a][1] for a in arms))


def _moments(*arms: str) -> SampleMoments:
    return SampleMoments(sum(ARMS[a][0] for a in arms), sum(ARMS[a][2] for a in arms), sum(ARMS[a][3] for a in arms))


def _comparisons(body: dict[str, Any], metric: str) -> dict[str, dict[str, Any]]:
    [found] = [m for m in body["holdout"]["metrics"] if m["key"] == metric]
    return {comparison["variant"]: comparison for comparison in found["comparisons"]}


async def test_each_variant_and_the_pooled_campaign_are_compared_with_the_held_out_users(
    client: httpx.AsyncClient, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment,
    write_stats: WriteStats,
) -> None:
    await _store_holdouts(redis, settings, Holdout(key="push-holdout", share=0.1),
                          Holdout(key="everything", share=0.02, scope=HoldoutScope.GLOBAL),
                          Holdout(key="unrelated", share=0.3))
    experiment = await create_experiment("push-copy", [("copy_a", 1), ("copy_b", 1)], METRICS)
    await redis.set(settings.redis_keys.experiment("push-copy"),
                    experiment.model_copy(update={"holdouts": ["push-holdout"]}).model_dump_json())
    await _write_arms(write_stats, "push-copy")

    body = (await client.get("/v1/experiments/push-copy/results", headers=READ)).json()

    holdout = body["holdout"]
    share = 1 - 0.9 * 0.98
    assert holdout["holdouts"] == ["everything", "push-holdout"]
    assert holdout["expected_share"] == pytest.approx(share, rel=1e-12)
    assert holdout["users"] == ARMS[HOLDOUT_ARM][0]
    expected_srm = srm_check([ARMS[HOLDOUT_ARM][0], ARMS["copy_a"][0] + ARMS["copy_b"][0]], [share, 1 - share])
    assert holdout["srm"]["p_value"] == pytest.approx(expected_srm.p_value, rel=1e-9)

    for metric, statistic in (("converted", _proportion), ("revenue", _moments)):
        comparisons = _comparisons(body, metric)
        assert set(comparisons) == {"copy_a", "copy_b", "(all variants)"}
        expected = {
            "copy_b": compare(statistic(HOLDOUT_ARM), statistic("copy_b")).relative,
            "(all variants)": compare(statistic(HOLDOUT_ARM), statistic("copy_a", "copy_b")).relative,
        }
        for arm, effect in expected.items():
            assert comparisons[arm]["baseline"] == HOLDOUT_ARM
            for name in ("effect", "ci_lower", "ci_upper", "p_value"):
                assert comparisons[arm][name] == pytest.approx(getattr(effect, name), rel=1e-9), (metric, arm, name)
    # The variants' own comparison is untouched by the holdout arm.
    [converted] = [m for m in body["metrics"] if m["key"] == "converted"]
    assert [v["key"] for v in converted["variants"]] == ["copy_a", "copy_b"]
    assert converted["comparisons"][0]["effect"] == pytest.approx(
        compare(_proportion("copy_a"), _proportion("copy_b")).relative.effect, rel=1e-12)


async def test_an_experiment_no_holdout_applies_to_has_no_holdout_section(
    client: httpx.AsyncClient, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment,
    write_stats: WriteStats,
) -> None:
    await _store_holdouts(redis, settings, Holdout(key="elsewhere", share=0.1))
    await create_experiment("title", [("copy_a", 1), ("copy_b", 1)], METRICS)
    for arm in ("copy_a", "copy_b"):
        await write_stats("title", arm, {"users": ARMS[arm][0], "converted:sum": ARMS[arm][1]})

    body = (await client.get("/v1/experiments/title/results", headers=READ)).json()

    assert body["holdout"] is None


@pytest.mark.parametrize(("lang", "title"), [("en", "Against the holdout"), ("zh", "与保留组对比")])
async def test_the_report_shows_the_campaign_against_the_holdout(
    client: httpx.AsyncClient, redis: Redis, settings: AnalyzerSettings, create_experiment: CreateExperiment,
    write_stats: WriteStats, lang: str, title: str,
) -> None:
    await _store_holdouts(redis, settings, Holdout(key="everything", share=0.1, scope=HoldoutScope.GLOBAL))
    await create_experiment("push-copy", [("copy_a", 1), ("copy_b", 1)], METRICS)
    await _write_arms(write_stats, "push-copy")
    basic = "Basic " + base64.b64encode(f"lead:{TEST_KEYS['read_key']}".encode()).decode()

    page = await client.get("/experiments/push-copy", params={"lang": lang}, headers={"Authorization": basic})

    assert page.status_code == 200
    section = page.text.split('<section class="card" id="holdout">')[1].split("</section>")[0]
    assert f"<h2>{title}</h2>" in section
    rows = section.split("<tbody>")[1].split("<tr>")[1:]
    assert [row.split("</td><td>")[1].split("</td>")[0] for row in rows] == [
        "copy_a", "copy_b", "(all variants)", "copy_a", "copy_b", "(all variants)",
    ]
