"""AnalyzerSettings: its own fields under SPLITSTREAM_ANALYZER_, the shared ones unprefixed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.analyzer.config import AnalyzerSettings


def test_defaults() -> None:
    settings = AnalyzerSettings()
    assert (settings.host, settings.port, settings.alpha) == ("127.0.0.1", 8003, 0.05)


def test_environment_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITSTREAM_ANALYZER_ALPHA", "0.1")
    monkeypatch.setenv("SPLITSTREAM_ANALYZER_PORT", "9103")
    monkeypatch.setenv("SPLITSTREAM_REDIS_PREFIX", "shared-prefix")
    settings = AnalyzerSettings()
    assert (settings.alpha, settings.port, settings.redis_prefix) == (0.1, 9103, "shared-prefix")


@pytest.mark.parametrize("alpha", ["0", "1", "nan", "-0.2"])
def test_alpha_outside_the_unit_interval_is_refused(monkeypatch: pytest.MonkeyPatch, alpha: str) -> None:
    monkeypatch.setenv("SPLITSTREAM_ANALYZER_ALPHA", alpha)
    with pytest.raises(ValidationError, match="alpha"):
        AnalyzerSettings()
