"""AnalyzerSettings: its own fields under SPLITSTREAM_ANALYZER_, the shared ones unprefixed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.analyzer.config import AnalyzerSettings


def test_defaults() -> None:
    settings = AnalyzerSettings()
    assert (settings.host, settings.port, settings.srm_threshold) == ("127.0.0.1", 8003, 0.001)


def test_environment_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSTREAM_ANALYZER_SRM_THRESHOLD", "0.01")
    monkeypatch.setenv("SPLITSTREAM_ANALYZER_PORT", "9103")
    monkeypatch.setenv("SPLITSTREAM_REDIS_PREFIX", "shared-prefix")
    settings = AnalyzerSettings()
    assert (settings.srm_threshold, settings.port, settings.redis_prefix) == (0.01, 9103, "shared-prefix")


@pytest.mark.parametrize("threshold", ["0", "1", "nan", "-0.2"])
def test_threshold_outside_the_unit_interval_is_refused(monkeypatch: pytest.MonkeyPatch, threshold: str) -> None:
    monkeypatch.setenv("SPLITSTREAM_ANALYZER_SRM_THRESHOLD", threshold)
    with pytest.raises(ValidationError, match="srm_threshold"):
        AnalyzerSettings()
