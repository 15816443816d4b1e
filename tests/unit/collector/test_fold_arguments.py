"""How events are flattened into the fold script's arguments, and the consumer's settings."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.collector.adapters.fold import script_fields, script_header
from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import MAX_CUPED_LOOKBACK_DAYS
from splitstream.keys import dedup_mark, user_place_bytes

AT = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def test_the_header_carries_the_limits_and_the_lateness_bound_in_milliseconds() -> None:
    header = script_header("pfx", dedup_ttl_seconds=604800, pending_ttl_seconds=7200, pending_max_events=200,
                           lateness_seconds=3600, poison=2, max_segment_values=20)

    assert header == ["pfx", "604800", "7200", "200", "3600000", "2", "20", str(MAX_CUPED_LOOKBACK_DAYS), "all", "",
                      "-1"]


def test_a_step_of_a_cluster_fold_carries_its_mode_experiment_and_the_batchs_metric_index() -> None:
    header = script_header("pfx", dedup_ttl_seconds=604800, pending_ttl_seconds=7200, pending_max_events=200,
                           lateness_seconds=3600, poison=0, mode="experiments", experiment="checkout",
                           index={"purchase": ["checkout|revenue|mean", "checkout~2|aov|ratio"], "view": []})

    assert header[8:] == ["experiments", "checkout", "2", "purchase", "checkout|revenue|mean\ncheckout~2|aov|ratio",
                          "view", ""]


def test_an_exposure_carries_its_experiment_variant_and_epoch_milliseconds() -> None:
    event = Exposure(type="exposure", event_id="e1", user_id="u:1", experiment="exp", variant="b", timestamp=AT)

    fields = script_fields(event, 1714564801000)

    assert fields == (
        "exposure", dedup_mark("e1"), "u:1", user_place_bytes("u:1"), "exp", "b", "1714564800123", "1714564801000", "",
    )


def test_an_exposure_names_its_phase_scope_and_carries_its_attributes_as_json() -> None:
    event = Exposure(type="exposure", event_id="e1", user_id="u1", experiment="exp", variant="b", timestamp=AT,
                     phase=3, attributes={"channel": "mini_program", "is_new": True, "tier": 2})

    fields = script_fields(event, 1714564801000)

    assert fields[4] == "exp~3"
    assert orjson.loads(fields[8]) == {"channel": "mini_program", "is_new": True, "tier": 2}


def test_without_an_arrival_time_an_event_arrives_at_its_received_at() -> None:
    event = TrackEvent(type="event", event_id="e1", user_id="u1", name="buy", timestamp=AT,
                       received_at=AT + timedelta(seconds=2))

    assert script_fields(event)[7] == "1714564802123"


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (2.0, "2.0"), (0.1, "0.1"), (1e-7, "1e-07"), (-123456.789012345, "-123456.789012345")],
)
def test_an_event_value_keeps_every_digit(value: float | None, text: str) -> None:
    event = TrackEvent(type="event", event_id="e1", user_id="u1", name="buy", value=value, timestamp=AT)

    fields = script_fields(event, 1714564800999)

    assert fields == (
        "event", dedup_mark("e1"), "u1", user_place_bytes("u1"), "buy", text, "1714564800123", "1714564800999", "",
    )
    assert value is None or float(fields[5]) == value


def test_consumer_settings_default_to_the_documented_values_and_read_the_collector_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("SPLITSTREAM_COLLECTOR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SPLITSTREAM_COLLECTOR_CONSUMER_BATCH_MAX", "50")
    monkeypatch.setenv("SPLITSTREAM_REDIS_PREFIX", "shared")

    settings = CollectorSettings()

    assert settings.consumer_batch_max == 50
    assert settings.redis_prefix == "shared"
    assert (settings.port, settings.max_batch_events, settings.max_future_skew_seconds) == (8002, 1000, 86400)
    assert settings.consumer_group == "splitstream-aggregator"
    assert settings.dedup_ttl_seconds == 7 * 86400
    assert settings.lateness_seconds == settings.pending_ttl_seconds == 3600
    assert settings.pending_max_events == 200
    assert settings.max_segment_values == 100
