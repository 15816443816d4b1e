"""?segment=<dimension>: the results within each value of a segment dimension, against a real Redis holding
hand-written segment statistics (the collector's layout, splitstream/keys.py)."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from services.analyzer.config import AnalyzerSettings
from services.analyzer.stats import Correction, adjust_p_values, compare
from splitstream.experiment import Metric, MetricType
from splitstream.statistics import Proportion
from tests.conftest import auth
from tests.service.analyzer.conftest import CreateExperiment

CONVERTED = Metric(key="converted", type=MetricType.BINOMIAL, event="purchase")


async def _segment(redis: Redis, settings: AnalyzerSettings, value: str, split: tuple[int, int, int, int]) -> None:
    keys = settings.redis_keys
    await redis.sadd(keys.segment_values("checkout", "channel"), value)
    for variant, users, conversions in (("control", *split[:2]), ("treatment", *split[2:])):
        await redis.hset(keys.segment_stats("checkout", "channel", value, variant), mapping={
            "users": users, "converted:sum": conversions, "converted:sumsq": conversions,
        })


async def test_each_value_is_read_on_its_own_largest_first_with_the_rest_as_other(
    client: httpx.AsyncClient, create_experiment: CreateExperiment, redis: Redis, settings: AnalyzerSettings
) -> None:
    experiment = await create_experiment("checkout", [("control", 1), ("treatment", 1)], [CONVERTED])
    await redis.set(settings.redis_keys.experiment("checkout"),
                    experiment.model_copy(update={"segments": ["channel"]}).model_dump_json())
    splits = {f"partner-{index:02d}": (1000 + 10 * index, 100 + index, 1000 + 10 * index, 110 + 2 * index)
              for index in range(23)}
    splits["(other)"] = (50, 5, 48, 6)
    splits["skewed"] = (4000, 400, 7000, 800)  # the largest segment, and split 4:7 instead of 1:1
    for value, split in splits.items():
        await _segment(redis, settings, value, split)

    answer = await client.get("/v1/experiments/checkout/results", params={"segment": "channel"},
                              headers=auth("read"))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["dimension"], body["method"], body["correction"]) == ("channel", "frequentist", "holm")
    values = [segment["value"] for segment in body["segments"]]
    by_size = sorted((v for v in splits if v != "(other)"), key=lambda v: -(splits[v][0] + splits[v][2]))
    assert values == [*by_size[:20], "(other)"]
    merged = [splits[v] for v in [*by_size[20:], "(other)"]]
    other = body["segments"][-1]
    assert [variant["users"] for variant in other["variants"]] == [
        sum(split[0] for split in merged), sum(split[2] for split in merged)
    ]

    for segment in body["segments"][:-1]:
        cu, cc, tu, tc = splits[segment["value"]]
        ours = compare(Proportion(cu, cc), Proportion(tu, tc)).relative
        [comparison] = segment["metrics"][0]["comparisons"]
        assert comparison["effect"] == pytest.approx(ours.effect, rel=1e-9)
        assert comparison["p_value"] == pytest.approx(ours.p_value, rel=1e-9)
    raw = [segment["metrics"][0]["comparisons"][0]["p_value"] for segment in body["segments"]]
    adjusted = [segment["metrics"][0]["comparisons"][0]["adjusted_p_value"] for segment in body["segments"]]
    assert adjusted == pytest.approx(list(adjust_p_values(raw, Correction.HOLM, 0.05).adjusted), rel=1e-9)
    assert values[0] == "skewed" and body["segments"][0]["srm"]["status"] == "mismatch"
    assert body["segments"][1]["srm"]["status"] == "ok"


async def test_a_dimension_the_experiment_does_not_keep_is_named_in_a_422(
    client: httpx.AsyncClient, create_experiment: CreateExperiment
) -> None:
    await create_experiment("plain", [("control", 1), ("treatment", 1)], [CONVERTED])
    answer = await client.get("/v1/experiments/plain/results", params={"segment": "channel"}, headers=auth("read"))
    assert answer.status_code == 422
    assert [field["field"] for field in answer.json()["error"]["fields"]] == ["query.segment"]
