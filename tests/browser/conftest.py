"""Fixtures of the browser tests: the analyzer service tests' settings and stored experiments (real Redis of the
test stack), and the analyzer served over real HTTP by uvicorn, for a real browser to load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings
from tests.live_server import serving
from tests.service.analyzer import conftest as analyzer

settings = analyzer.settings
create_experiment = analyzer.create_experiment
write_stats = analyzer.write_stats


@pytest.fixture
def live_analyzer(settings: AnalyzerSettings) -> Iterator[str]:
    """The analyzer app under uvicorn on a free port of 127.0.0.1 (its own thread and event loop); its base URL."""
    app = create_app(settings.model_copy(update={"gauge_refresh_seconds": 0, "snapshot_interval_seconds": 0}))
    with serving(app, "live-analyzer") as url:
        yield url
