"""The settings every service shares. Each service subclasses with its own env prefix for its own fields.

Shared fields are read from unprefixed ``SPLITSTREAM_*`` variables (one value for the whole stack), e.g.
``SPLITSTREAM_KAFKA_BOOTSTRAP_SERVERS``, ``SPLITSTREAM_REDIS_URL``, ``SPLITSTREAM_ADMIN_KEY``.
"""

from __future__ import annotations

from typing import Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from splitstream.eventlog import dead_letter_topic_for
from splitstream.keys import DEFAULT_EVENTS_TOPIC, RedisKeys


def _shared(name: str) -> AliasChoices:
    return AliasChoices(name, f"SPLITSTREAM_{name.upper()}")


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=_shared("kafka_bootstrap_servers"))
    events_topic: str = Field(DEFAULT_EVENTS_TOPIC, validation_alias=_shared("events_topic"))
    dead_letter_topic: str = Field("", validation_alias=_shared("dead_letter_topic"))
    """Where undecodable records of the events topic go; empty means ``{events_topic}.dead-letter``."""
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_shared("redis_url"))
    redis_prefix: str = Field("ss", validation_alias=_shared("redis_prefix"))
    admin_key: SecretStr | None = Field(None, validation_alias=_shared("admin_key"))
    ingest_key: SecretStr | None = Field(None, validation_alias=_shared("ingest_key"))
    read_key: SecretStr | None = Field(None, validation_alias=_shared("read_key"))

    @model_validator(mode="after")
    def _dead_letter_topic_follows_the_events_topic(self) -> Self:
        if not self.dead_letter_topic:
            self.dead_letter_topic = dead_letter_topic_for(self.events_topic)
        return self

    @property
    def redis_keys(self) -> RedisKeys:
        return RedisKeys(self.redis_prefix)
