"""Fixtures of the browser tests: the analyzer service tests' settings and stored experiments (real Redis of the
test stack), and the analyzer served over real HTTP by uvicorn, for a real browser to load."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from services.analyzer.app import create_app
from services.analyzer.config import AnalyzerSettings
from tests.service.analyzer import conftest as analyzer

settings = analyzer.settings
create_experiment = analyzer.create_experiment
write_stats = analyzer.write_stats

STARTUP_SECONDS = 15


@pytest.fixture
def live_analyzer(settings: AnalyzerSettings) -> Iterator[str]:
    """The analyzer app under uvicorn on a free port of 127.0.0.1 (its own thread and event loop); its base URL."""
    app = create_app(settings.model_copy(update={"gauge_refresh_seconds": 0, "snapshot_interval_seconds": 0}))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # the port is taken before uvicorn starts: no race for a free one
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="live-analyzer", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            listener.close()
            pytest.fail("the analyzer did not start under uvicorn")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
