"""Settings of the collector's HTTP ingest and of its aggregation consumer (one class: both read the same stack)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.collector.adapters.fold import DEFAULT_MAX_SEGMENT_VALUES
from splitstream.settings import CommonSettings

_HOUR_SECONDS = 3600
_DAY_SECONDS = 24 * _HOUR_SECONDS
_WEEK_SECONDS = 7 * _DAY_SECONDS


class CollectorSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SPLITSTREAM_COLLECTOR_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8002, ge=1, le=65535)
    max_batch_events: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1)
    """A larger request body is refused (413) without being read further."""
    max_future_skew_seconds: int = Field(_DAY_SECONDS, ge=0)
    max_past_skew_seconds: int = Field(3 * _DAY_SECONDS, ge=0)
    """Events older than this are refused: a resend must still find the first delivery's dedup mark."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to POST /v1/events; env ``SPLITSTREAM_COLLECTOR_CORS_ORIGINS`` as a JSON list."""

    consumer_group: str = Field("splitstream-aggregator", min_length=1)
    dedup_ttl_seconds: int = Field(_WEEK_SECONDS, ge=1)
    """How long an applied event_id is remembered at least (marks are swept a whole day of arrival at a time, so up
    to a day longer); a redelivery later than this may count twice."""
    lateness_seconds: int = Field(_HOUR_SECONDS, ge=1)
    """An event that arrives before its user's exposure is attributed when the exposure arrives only if the
    exposure arrives at most this long after the event did (both by arrival time: ``received_at``, else the Kafka
    record's timestamp)."""
    pending_ttl_seconds: int = Field(_HOUR_SECONDS, ge=1)
    """How long a user's recent events wait for an exposure that arrives after them; past ``lateness_seconds``
    they can never be attributed, so a longer wait only costs memory."""
    pending_max_events: int = Field(200, ge=1)
    max_segment_values: int = Field(DEFAULT_MAX_SEGMENT_VALUES, ge=1, le=10_000)
    """Distinct values kept per segment dimension and experiment; later values are counted as ``(other)``."""
    consumer_batch_max: int = Field(1000, ge=1)
    """Events folded per Redis call at most. Calls are full while a backlog drains, and a full call holds Redis for
    about 11 ms (its script runs alone); 1,000 folded about a fifth more events per second than 500 in the benchmark
    (bench/ingest).
    Lower it when other clients of the same Redis (the assignment service) must never wait that long."""
    consumer_metrics_host: str = "0.0.0.0"  # Prometheus scrapes it from another host or container
    consumer_metrics_port: int = Field(9102, ge=0, le=65535)
    """The consumer's Prometheus endpoint (it has no other HTTP port); 0 turns it off."""

    @model_validator(mode="after")
    def _accepted_events_stay_deduplicated(self) -> Self:
        # An event first applied up to max_future_skew before its timestamp may be resent (and accepted) until
        # max_past_skew after it; its dedup mark must outlive that whole span or the resend counts twice.
        accepted_span = self.max_past_skew_seconds + self.max_future_skew_seconds
        if accepted_span >= self.dedup_ttl_seconds:
            raise ValueError(
                f"max_past_skew_seconds + max_future_skew_seconds ({self.max_past_skew_seconds} + "
                f"{self.max_future_skew_seconds}) must be less than dedup_ttl_seconds ({self.dedup_ttl_seconds}): "
                "an event resent after its dedup mark expired would be counted twice"
            )
        return self

    @model_validator(mode="after")
    def _pending_events_wait_out_the_lateness_bound(self) -> Self:
        if self.pending_ttl_seconds < self.lateness_seconds:
            raise ValueError(
                f"pending_ttl_seconds ({self.pending_ttl_seconds}) must be at least lateness_seconds "
                f"({self.lateness_seconds}): an event must still be pending when a late-enough exposure arrives"
            )
        return self
