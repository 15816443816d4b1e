"""The provisioned Grafana dashboard queries only metrics the code defines, from the provisioned datasource."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

# Imported for their side effect: each module registers its metrics in the default registry.
import services.analyzer.gauges
import services.assignment.metrics
import services.collector.metrics
import splitstream.service_app

PROVISIONING = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "provisioning"
DASHBOARD = PROVISIONING / "dashboards" / "splitstream-experiments.json"
METRIC_NAME = re.compile(r"\bsplitstream_[a-z0-9_]+")
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
DEFINING_MODULES = (
    services.analyzer.gauges, services.assignment.metrics, services.collector.metrics, splitstream.service_app,
)
"""Where the splitstream_* metrics are defined; importing them fills the default registry."""


def _queries(node: Any) -> Iterator[str]:
    """Every PromQL string of the dashboard: panel targets' ``expr`` and template variables' queries."""
    if isinstance(node, dict):
        for field, value in node.items():
            if field in {"expr", "definition", "query"} and isinstance(value, str):
                yield value
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def _defined_series_names() -> set[str]:
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("splitstream_")
        for suffix in SAMPLE_SUFFIXES.get(family.type, ())
    }


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def test_every_queried_metric_is_defined(dashboard: dict[str, Any]) -> None:
    queried = {name for query in _queries(dashboard) for name in METRIC_NAME.findall(query)}
    defined = _defined_series_names()

    assert {"splitstream_effect", "splitstream_ingest_events_total", "splitstream_consumer_lag"} <= queried
    assert queried - defined == set(), f"queried but defined nowhere: {sorted(queried - defined)}"


def test_the_brief_s_readouts_are_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    queried = {name for query in _queries(dashboard) for name in METRIC_NAME.findall(query)}
    wanted = {
        "splitstream_effect", "splitstream_effect_ci_lower", "splitstream_effect_ci_upper", "splitstream_users",
        "splitstream_srm_p_value", "splitstream_http_requests_total", "splitstream_ingest_events_total",
        "splitstream_consumer_lag", "splitstream_holdout_effect", "splitstream_holdout_users",
    }
    assert wanted - queried == set()
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"experiment", "metric"} <= variables


def test_panels_use_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel}
    assert used and used <= uids


def test_the_provider_loads_the_dashboard_directory() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "splitstream.yml").read_text())
    # docker-compose mounts deploy/grafana/provisioning at /etc/grafana/provisioning.
    paths = {entry["options"]["path"] for entry in provider["providers"]}
    assert paths == {"/etc/grafana/provisioning/" + DASHBOARD.parent.name}
