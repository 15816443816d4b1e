"""Fixtures of the Prometheus test: the analyzer service tests' settings and stored experiments (real Redis of the
test stack)."""

from __future__ import annotations

from tests.service.analyzer import conftest as analyzer

settings = analyzer.settings
create_experiment = analyzer.create_experiment
write_stats = analyzer.write_stats
