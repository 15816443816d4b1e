"""Settings of the assignment service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from splitstream.settings import CommonSettings

DEFAULT_DEFINITIONS_TOPIC = "splitstream.experiments"


class AssignmentSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SPLITSTREAM_ASSIGNMENT_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8001, ge=1, le=65535)
    definitions_topic: str = DEFAULT_DEFINITIONS_TOPIC
    """Compacted topic carrying the latest version of every experiment, keyed by experiment key."""
    catalog_resync_seconds: float = Field(5.0, gt=0, allow_inf_nan=False)
    """Full reload of the definitions even without a change message (a missed pub/sub message heals this late)."""
    sticky_cache_size: int = Field(200_000, ge=0)
    """Sticky records kept in memory; each saves a Redis round trip for a returning unit."""
    answer_cache_size: int = Field(100_000, ge=0)
    """``/v1/assign`` answers kept in memory to be given again to the same request (a returning user with the same
    attributes) while no definition changes; 0 keeps none."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call /v1/assign and /v1/config; env ``SPLITSTREAM_ASSIGNMENT_CORS_ORIGINS``
    as a JSON list."""
    kafka_retry_seconds: float = Field(2.0, gt=0, allow_inf_nan=False)
    """Pause between attempts to connect the producer when Kafka is down at start-up."""
