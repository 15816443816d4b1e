from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from splitstream.evaluation import Catalog, CatalogDocument, Reason, exposure_event_id
from splitstream.experiment import Experiment, ExperimentStatus, LayerSlot, RampStep, Variant
from splitstream.layers import Holdout, HoldoutScope, Layer, allocate
from splitstream.sdk import Assignment, ConfigUnavailable, SplitStream, UnknownExperiment
from splitstream.targeting import Attributes, Condition, Operator

ASSIGNMENT = "http://assignment.test"
COLLECTOR = "http://collector.test"
API_KEY = "ingest-key"
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
RAMP_AT = NOW + timedelta(hours=1)
VECTORS = Path(__file__).resolve().parents[3] / "sdk" / "test-vectors.json"


def experiment(key: str, variants: list[str] | list[Variant], **fields: object) -> Experiment:
    listed = [item if isinstance(item, Variant) else Variant(key=item, payload={"shows": item}) for item in variants]
    values = {"status": ExperimentStatus.RUNNING, "salt": key, "created_at": NOW - timedelta(days=3), **fields}
    return Experiment.model_validate({"key": key, "variants": listed, **values})


def full_document() -> CatalogDocument:
    """One experiment or more for every rule of the evaluation."""
    return CatalogDocument(
        experiments=[
            experiment(
                "title-test", ["control", "new_title"], holdouts=["hold-20"], forced={"qa-1": "new_title"},
                targeting=[Condition(attribute="country", op=Operator.IN, value=["CN", "US"])],
            ),
            experiment("device-test", ["a", "b", "c"], unit="device_id", coverage=0.6),
            experiment(
                "layer-a", ["x", "y"], layer=LayerSlot(key="home", share=0.5), layer_ranges=allocate(0.5, []),
            ),
            experiment("old-test", ["a", "b"], status=ExperimentStatus.STOPPED),
            experiment("draft-test", ["a", "b"], status=ExperimentStatus.DRAFT, forced={"qa-1": "b"}),
            experiment("shipped-test", ["a", "b"], status=ExperimentStatus.SHIPPED, shipped_variant="b"),
            experiment("ramped-test", ["a", "b"], coverage=0.0, ramp=[RampStep(at=RAMP_AT, coverage=1.0)]),
        ],
        layers=[Layer(key="home")],
        holdouts=[
            Holdout(key="hold-20", share=0.2), Holdout(key="everything-5", share=0.05, scope=HoldoutScope.GLOBAL)
        ],
    )


class FakeServices:
    """The assignment service's ``GET /v1/config`` (with ETags) and the collector's ``POST /v1/events``."""

    def __init__(self, document: CatalogDocument) -> None:
        self.document = document
        self.config_down = False
        self.events: list[dict[str, object]] = []
        self.config_requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        url = str(request.url)
        if url == ASSIGNMENT + "/v1/config":
            self.config_requests += 1
            if self.config_down:
                raise httpx.ConnectError("connection refused")
            etag = self.document.etag()
            if request.headers.get("if-none-match") == etag:
                return httpx.Response(304, headers={"ETag": etag})
            return httpx.Response(200, content=self.document.model_dump_json(), headers={"ETag": etag})
        assert url == COLLECTOR + "/v1/events"
        events = json.loads(request.content)["events"]
        self.events.extend(events)
        return httpx.Response(202, json={"accepted": len(events), "rejected": []})


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def client_for(services: FakeServices, clock: Clock | None = None, *, background: bool = False) -> SplitStream:
    return SplitStream(
        ASSIGNMENT + "/", COLLECTOR, API_KEY, transport=httpx.MockTransport(services), clock=clock or Clock(),
        background=background, flush_seconds=60.0,
    )


def attribute_sets(index: int) -> Attributes:
    choices: list[Attributes] = [
        {"country": "CN", "device_id": f"d{index % 50}"},
        {"country": "US", "is_new": True},
        {"country": "DE", "device_id": f"d{index % 50}"},
        {},
    ]
    return choices[index % len(choices)]


USERS = [f"u{index}" for index in range(400)] + ["qa-1"]


def test_decisions_equal_the_shared_evaluation_given_each_units_first_counted_variant() -> None:
    document = full_document()
    reference = Catalog(document)
    client = client_for(FakeServices(document))
    first_counted: dict[tuple[str | None, str], str] = {}  # (unit, experiment) -> variant: the spec of stickiness
    seen: set[Reason] = set()

    for index, user in enumerate(USERS):
        attributes = attribute_sets(index)
        for key in [item.key for item in document.experiments]:
            for _ in range(2):
                assignment = client.assign(user, attributes, experiment=key)
                recorded = first_counted.get((assignment.unit_id, key))
                expected = reference.evaluate(key, user, attributes, NOW, recorded)
                assert assignment == expected
                assert assignment.user_id == user
                if expected.in_experiment:
                    first_counted.setdefault((expected.unit_id, key), expected.variant)
                seen.add(assignment.reason)

    assert seen == set(Reason)


def test_assign_all_covers_the_live_experiments_in_catalog_order() -> None:
    document = full_document()
    reference = Catalog(document)
    client = client_for(FakeServices(document))

    assignments = client.assign_all("u7", {"country": "CN", "device_id": "d7"})

    assert [item.experiment for item in assignments] == [
        "title-test", "device-test", "layer-a", "shipped-test", "ramped-test"
    ]
    assert assignments == reference.evaluate_all(
        "u7", {"country": "CN", "device_id": "d7"}, NOW
    )
    chosen = client.assign_all("u7", experiments=["old-test", "title-test"])
    assert [(item.experiment, item.reason) for item in chosen] == [
        ("old-test", Reason.NOT_RUNNING), ("title-test", Reason.NOT_TARGETED)
    ]


def test_every_test_vector_gets_its_variant() -> None:
    cases = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
    document = CatalogDocument(
        experiments=[
            experiment(
                f"case-{index}",
                [Variant(key=f"v{rank}", weight=weight) for rank, weight in enumerate(case["weights"])],
                salt=case["salt"],
                coverage=case["coverage"],
            )
            for index, case in enumerate(cases)
        ]
    )
    client = client_for(FakeServices(document))

    reasons = set()
    for index, case in enumerate(cases):
        decision = client.assign(case["unit_id"], experiment=f"case-{index}")
        reasons.add(decision.reason)
        assert decision.unit_id == case["unit_id"]
        if case["variant"] is None:  # outside the coverage: the control is shown
            assert (decision.reason, decision.variant) == (Reason.NOT_IN_COVERAGE, "v0"), case
        else:
            assert (decision.reason, decision.variant) == (Reason.HASHED, f"v{case['variant']}"), case

    assert reasons == {Reason.HASHED, Reason.NOT_IN_COVERAGE}


def first_in_experiment(client: SplitStream, key: str, attributes: Attributes) -> Assignment:
    for user in USERS:
        assignment = client.assign(user, attributes, experiment=key)
        if assignment.in_experiment:
            return assignment
    raise AssertionError(f"nobody is in {key}")


def test_an_exposure_is_queued_once_in_the_collector_shape() -> None:
    services = FakeServices(full_document())
    client = client_for(services)
    assignment = first_in_experiment(client, "title-test", {"country": "CN"})

    assert client.expose(assignment) is True
    assert client.expose(assignment) is False
    assert client.expose(client.assign(assignment.user_id, {"country": "CN"}, experiment="title-test")) is False
    assert client.expose(client.assign("u1", {"country": "DE"}, experiment="title-test")) is False  # not targeted
    assert client.flush() is True

    assert services.events == [{
        "type": "exposure",
        "event_id": exposure_event_id("title-test", 1, assignment.user_id),
        "user_id": assignment.user_id,
        "experiment": "title-test",
        "variant": assignment.arm,  # "(holdout)" for a held-out user, who sees the control
        "phase": 1,
        "timestamp": "2026-11-23T15:00:00Z",
        "attributes": {},
    }]


def test_an_exposure_carries_the_attributes_the_experiment_keeps_segments_by() -> None:
    services = FakeServices(CatalogDocument(experiments=[
        experiment("segmented", ["control", "treatment"], segments=["channel", "is_new"]),
    ]))
    client = client_for(services)
    attributes: Attributes = {"channel": "mini_program", "is_new": True, "country": "CN"}
    assignment = client.assign("u1", attributes, experiment="segmented")

    assert client.expose(assignment, attributes) is True
    assert client.flush() is True
    assert services.events[0]["attributes"] == {"channel": "mini_program", "is_new": True}


def test_an_exposure_by_another_unit_carries_the_users_id() -> None:
    services = FakeServices(full_document())
    client = client_for(services)
    devices: list[Attributes] = [{"device_id": f"d{index}"} for index in range(100)]
    shared_device = next(
        device for device in devices if client.assign("alice", device, experiment="device-test").in_experiment
    )
    first = client.assign("alice", shared_device, experiment="device-test")
    second = client.assign("bob", shared_device, experiment="device-test")

    assert client.expose(first) and client.expose(second)
    client.flush()

    assert [(event["user_id"], event["event_id"]) for event in services.events] == [
        ("alice", exposure_event_id("device-test", 1, "alice")),
        ("bob", exposure_event_id("device-test", 1, "bob")),
    ]
    assert first.unit_id == second.unit_id == shared_device["device_id"]
    assert first.variant == second.variant


def test_track_queues_events_in_the_collector_shape() -> None:
    services = FakeServices(full_document())
    client = client_for(services)

    assert client.track("u1", "purchase", 12.5, event_id="order-981") == "order-981"
    an_hour_east = timezone(timedelta(hours=1))
    generated = client.track("u1", "signup", timestamp=datetime(2026, 11, 23, 16, 30, tzinfo=an_hour_east))
    with pytest.raises(ValidationError):
        client.track("u1", "not a name!")
    client.flush()

    assert services.events == [
        {"type": "event", "event_id": "order-981", "user_id": "u1", "name": "purchase", "value": 12.5,
         "timestamp": "2026-11-23T15:00:00Z"},
        {"type": "event", "event_id": generated, "user_id": "u1", "name": "signup",
         "timestamp": "2026-11-23T15:30:00Z"},
    ]
    assert uuid.UUID(generated).version == 4


def test_sticky_variants_survive_a_weight_change_until_a_new_phase() -> None:
    before = CatalogDocument(experiments=[experiment("weights-test", ["a", "b"])])
    services = FakeServices(before)
    client = client_for(services)
    first = {user: client.assign(user, experiment="weights-test").variant for user in USERS}

    reweighted = experiment("weights-test", [Variant(key="a", weight=0.95), Variant(key="b", weight=0.05)], version=2)
    services.document = CatalogDocument(experiments=[reweighted])
    assert client.refresh() is True
    fresh = Catalog(services.document)
    moved = [user for user in USERS if fresh.evaluate("weights-test", user, {}, NOW).variant != first[user]]
    assert len(moved) > 50  # a new process would move many users...

    for user in USERS:  # ...this one keeps every one of them where they were
        kept = client.assign(user, experiment="weights-test")
        assert (kept.variant, kept.reason) == (first[user], Reason.STICKY)

    services.document = CatalogDocument(experiments=[reweighted.model_copy(update={"phase": 2, "version": 3})])
    assert client.refresh() is True
    for user in moved:
        rebucketed = client.assign(user, experiment="weights-test")
        assert rebucketed.reason is Reason.HASHED
        assert rebucketed.variant != first[user]


def test_the_clock_decides_which_ramp_step_is_in_force() -> None:
    clock = Clock()
    client = client_for(FakeServices(full_document()), clock)

    assert client.assign("u1", experiment="ramped-test").reason is Reason.NOT_IN_COVERAGE
    clock.now = RAMP_AT
    assert client.assign("u1", experiment="ramped-test").reason is Reason.HASHED


def test_an_unchanged_catalog_is_kept_on_304_and_a_failed_refresh_keeps_the_last() -> None:
    services = FakeServices(full_document())
    client = client_for(services)
    catalog = client.catalog

    assert client.refresh() is True
    assert client.catalog is catalog
    services.config_down = True
    assert client.refresh() is False
    assert client.catalog is catalog
    assert client.assign("u1", {"country": "CN"}, experiment="title-test").experiment == "title-test"


def test_without_any_catalog_assign_says_so_until_a_refresh_succeeds() -> None:
    services = FakeServices(full_document())
    services.config_down = True
    client = client_for(services)

    with pytest.raises(ConfigUnavailable):
        client.assign("u1", experiment="title-test")
    services.config_down = False
    assert client.refresh() is True
    assert client.assign("u1", {"country": "CN"}, experiment="title-test").experiment == "title-test"


def test_an_unknown_experiment_is_an_error() -> None:
    client = client_for(FakeServices(full_document()))

    with pytest.raises(UnknownExperiment):
        client.assign("u1", experiment="no-such-test")
    with pytest.raises(UnknownExperiment):
        client.assign_all("u1", experiments=["title-test", "no-such-test"])


def test_leaving_the_context_flushes_what_is_queued() -> None:
    services = FakeServices(full_document())
    with client_for(services, background=True) as client:  # the sender alone would wait a minute
        assignment = first_in_experiment(client, "layer-a", {})
        client.expose(assignment)
        client.track(assignment.user_id, "purchase", 3.0)
        assert services.events == []

    assert [event["type"] for event in services.events] == ["exposure", "event"]
    assert client.delivery_stats().delivered == 2
    client.close()  # closing again is harmless
