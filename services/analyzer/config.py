"""Settings of the analyzer."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.analyzer.stats import DEFAULT_SRM_THRESHOLD
from splitstream.settings import CommonSettings


class AnalyzerSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="SPLITSTREAM_ANALYZER_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8003, ge=1, le=65535)
    srm_threshold: float = Field(DEFAULT_SRM_THRESHOLD, gt=0, lt=1, allow_inf_nan=False)
    """p-value of the sample-ratio check below which the split is reported as a mismatch."""
    gauge_refresh_seconds: float = Field(15.0, ge=0, allow_inf_nan=False)
    """Seconds between refreshes of the experiment gauges on /metrics; 0 disables them."""
    alert_webhook_url: str | None = None
    """Where alerts are posted (a Slack-compatible ``{"text": ...}`` body); None: no alerts."""
    alert_interval_seconds: float = Field(60.0, gt=0, allow_inf_nan=False)
    stop_on_guardrail_harm: bool = False
    """Stop an experiment whose guardrail is harmed (through the assignment service's admin API)."""
    assignment_url: str = "http://127.0.0.1:8001"
    snapshot_interval_seconds: float = Field(3600.0, ge=0, allow_inf_nan=False)
    """Seconds between snapshots of every running experiment's statistics (the time series); 0 disables them."""
