"""Settings of the collector's HTTP ingest and of its aggregation consumer (one class: both read the same stack)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from splitstream.settings import CommonSettings

_WEEK_SECONDS = 7 * 86400


class CollectorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SPLITSTREAM_COLLECTOR_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8002, ge=1, le=65535)
    max_batch_events: int = Field(1000, ge=1)
    max_future_skew_seconds: int = Field(86400, ge=0)

    consumer_group: str = Field("splitstream-aggregator", min_length=1)
    dedup_ttl_seconds: int = Field(_WEEK_SECONDS, ge=1)
    """How long an applied event_id is remembered; a redelivery later than this would count twice."""
    pending_ttl_seconds: int = Field(_WEEK_SECONDS, ge=1)
    """How long a user's recent events wait for an exposure that arrives after them."""
    pending_max_events: int = Field(200, ge=1)
    consumer_batch_max: int = Field(500, ge=1)
