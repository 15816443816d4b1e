"""Settings of the assignment service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from splitstream.settings import CommonSettings


class AssignmentSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SPLITSTREAM_ASSIGNMENT_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8001, ge=1, le=65535)
    experiment_cache_seconds: float = Field(1.0, ge=0, allow_inf_nan=False)
    """How long /v1/assign reuses a definition read from Redis; another instance's start/stop shows up this late.
    0 reads Redis on every call."""
    kafka_retry_seconds: float = Field(2.0, gt=0, allow_inf_nan=False)
    """Pause between attempts to connect the producer when Kafka is down at start-up."""
