"""The collector's settings: limits, CORS origins from the environment, and the dedup window they must fit in."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from services.collector.config import CollectorSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SPLITSTREAM_")]:
        monkeypatch.delenv(name)


def test_limits_default_to_the_documented_values() -> None:
    settings = CollectorSettings()

    assert settings.max_body_bytes == 1_048_576
    assert settings.max_past_skew_seconds == 3 * 86400
    assert settings.cors_origins == []
    assert settings.consumer_metrics_port == 9102
    assert settings.dead_letter_topic == "splitstream.events.dead-letter"


def test_the_dead_letter_topic_follows_the_events_topic_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSTREAM_EVENTS_TOPIC", "shop.events")

    assert CollectorSettings().dead_letter_topic == "shop.events.dead-letter"
    monkeypatch.setenv("SPLITSTREAM_DEAD_LETTER_TOPIC", "shop.quarantine")
    assert CollectorSettings().dead_letter_topic == "shop.quarantine"


def test_cors_origins_are_read_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSTREAM_COLLECTOR_CORS_ORIGINS", '["https://shop.example.com", "http://localhost:3000"]')

    assert CollectorSettings().cors_origins == ["https://shop.example.com", "http://localhost:3000"]


def test_the_accepted_time_span_must_be_shorter_than_the_dedup_window() -> None:
    CollectorSettings(max_past_skew_seconds=5 * 86400, max_future_skew_seconds=86400, dedup_ttl_seconds=7 * 86400)

    with pytest.raises(ValidationError, match="must be less than dedup_ttl_seconds"):
        CollectorSettings(max_past_skew_seconds=7 * 86400, dedup_ttl_seconds=7 * 86400)
    with pytest.raises(ValidationError, match=r"\(5 \+ 5\) must be less than dedup_ttl_seconds \(10\)"):
        CollectorSettings(max_past_skew_seconds=5, max_future_skew_seconds=5, dedup_ttl_seconds=10)


def test_pending_events_must_wait_at_least_the_lateness_bound() -> None:
    CollectorSettings(lateness_seconds=600, pending_ttl_seconds=600)

    with pytest.raises(ValidationError, match=r"pending_ttl_seconds \(3599\) must be at least lateness_seconds"):
        CollectorSettings(pending_ttl_seconds=3599)
    with pytest.raises(ValidationError, match="lateness_seconds"):
        CollectorSettings(lateness_seconds=0)
