from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.assignment.adapters.sticky import StickyKey, StickyValue
from services.assignment.service import AssignmentService
from splitstream.errors import DependencyUnavailable, NotFound
from splitstream.evaluation import Catalog, Reason, exposure_event_id, sticky_field
from splitstream.events import Exposure
from splitstream.experiment import Experiment
from splitstream.hashing import bucket, variant_index

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _experiment(key: str = "exp", *, weights: tuple[float, ...] = (0.5, 0.5), **fields: Any) -> Experiment:
    return Experiment.model_validate({
        "key": key, "salt": key, "created_at": NOW, "status": "running",
        "variants": [{"key": f"v{i}", "weight": w, "payload": {"title": f"t{i}"}} for i, w in enumerate(weights)],
        **fields,
    })


class MemorySticky:
    def __init__(self, *, broken: bool = False) -> None:
        self.records: dict[StickyKey, StickyValue] = {}
        self.lookups: list[list[StickyKey]] = []
        self.broken = broken

    async def lookup(self, wanted: Sequence[StickyKey]) -> dict[StickyKey, StickyValue]:
        if self.broken:
            raise RedisConnectionError("down")
        self.lookups.append(list(wanted))
        return {key: self.records[key] for key in wanted if key in self.records}

    async def record(self, first: Mapping[StickyKey, StickyValue], now_logged: Mapping[StickyKey, str]) -> None:
        if self.broken:
            raise RedisConnectionError("down")
        for key, value in first.items():
            self.records.setdefault(key, value)
        for key, variant in now_logged.items():
            self.records[key] = StickyValue(variant, exposure_logged=True)


class RecordingPublisher:
    def __init__(self, *, fail: bool = False) -> None:
        self.published: list[Exposure] = []
        self.fail = fail

    async def publish(self, events: Sequence[Exposure]) -> None:
        if self.fail:
            raise DependencyUnavailable("kafka: down")
        self.published.extend(events)


class Feed:
    def __init__(self, *experiments: Experiment, loaded: bool = True) -> None:
        self.current = Catalog.of(experiments)
        self.loaded = loaded


def _service(feed: Feed, sticky: MemorySticky, publisher: RecordingPublisher) -> AssignmentService:
    return AssignmentService(feed, sticky, publisher, clock=lambda: NOW)


def _hashed_variant(experiment: Experiment, user: str) -> str:
    index = variant_index(experiment.weights, experiment.coverage, bucket(experiment.salt, user))
    assert index is not None
    return experiment.variants[index].key


async def test_a_first_assignment_is_hashed_logged_once_and_recorded() -> None:
    experiment = _experiment()
    sticky, publisher = MemorySticky(), RecordingPublisher()
    [assignment] = await _service(Feed(experiment), sticky, publisher).assign("user-1", {})

    variant = _hashed_variant(experiment, "user-1")
    assert (assignment.decision.reason, assignment.decision.variant) == (Reason.HASHED, variant)
    assert assignment.decision.payload == {"title": f"t{variant[1]}"}
    assert assignment.exposure_logged and assignment.exposure is None
    assert publisher.published == [Exposure(
        type="exposure", event_id=exposure_event_id("exp", 1, "user-1"), user_id="user-1", timestamp=NOW,
        experiment="exp", variant=variant, phase=1,
    )]
    assert sticky.records == {StickyKey("user_id", "user-1", "exp#1"): StickyValue(variant, exposure_logged=True)}


async def test_a_returning_user_is_sticky_and_nothing_is_logged_again() -> None:
    sticky, publisher = MemorySticky(), RecordingPublisher()
    service = _service(Feed(_experiment()), sticky, publisher)
    await service.assign("user-1", {})
    [again] = await service.assign("user-1", {})
    assert again.decision.reason is Reason.STICKY
    assert again.exposure_logged
    assert len(publisher.published) == 1


async def test_an_unlogged_assignment_hands_back_its_exposure_and_a_later_logged_call_publishes_it() -> None:
    sticky, publisher = MemorySticky(), RecordingPublisher()
    service = _service(Feed(_experiment()), sticky, publisher)
    [quiet] = await service.assign("user-1", {}, log_exposure=False)
    assert publisher.published == []
    assert not quiet.exposure_logged
    assert quiet.exposure is not None and quiet.exposure.event_id == exposure_event_id("exp", 1, "user-1")

    [logged] = await service.assign("user-1", {})
    assert logged.decision.reason is Reason.STICKY and logged.exposure_logged
    assert [event.event_id for event in publisher.published] == [quiet.exposure.event_id]
    [third] = await service.assign("user-1", {})
    assert third.exposure_logged and len(publisher.published) == 1


async def test_a_weight_change_moves_nobody_already_assigned_but_a_new_phase_does() -> None:
    users = [f"user-{i}" for i in range(300)]
    before = _experiment(weights=(0.5, 0.5))
    sticky, publisher = MemorySticky(), RecordingPublisher()
    first = {u: (await _service(Feed(before), sticky, publisher).assign(u, {}))[0].decision.variant for u in users}

    reweighted = before.model_copy(update={"variants": [
        before.variants[0].model_copy(update={"weight": 0.1}), before.variants[1].model_copy(update={"weight": 0.9}),
    ]})
    service = _service(Feed(reweighted), sticky, publisher)
    after = {u: (await service.assign(u, {}))[0].decision for u in users}
    assert {u: d.variant for u, d in after.items()} == first
    assert {d.reason for d in after.values()} == {Reason.STICKY}

    new_phase = reweighted.model_copy(update={"phase": 2})
    rehashed = {u: (await _service(Feed(new_phase), sticky, publisher).assign(u, {}))[0].decision for u in users}
    assert {d.reason for d in rehashed.values()} == {Reason.HASHED}
    assert {u: d.variant for u, d in rehashed.items()} == {u: _hashed_variant(new_phase, u) for u in users}
    assert sum(d.variant == "v1" for d in rehashed.values()) > 0.8 * len(users)


async def test_one_sticky_lookup_serves_every_experiment_of_the_request() -> None:
    sticky = MemorySticky()
    feed = Feed(
        _experiment("a"), _experiment("b"), _experiment("c", unit="device_id"), _experiment("d", status="draft")
    )
    assignments = await _service(feed, sticky, RecordingPublisher()).assign("user-1", {"device_id": "dev-9"})
    assert [a.decision.experiment for a in assignments] == ["a", "b", "c"]  # the draft is not live
    assert sticky.lookups == [[
        StickyKey("user_id", "user-1", sticky_field("a", 1)), StickyKey("user_id", "user-1", sticky_field("b", 1)),
        StickyKey("device_id", "dev-9", sticky_field("c", 1)),
    ]]


async def test_decisions_outside_the_experiment_log_and_record_nothing() -> None:
    sticky, publisher = MemorySticky(), RecordingPublisher()
    targeted = _experiment(targeting=[{"attribute": "country", "op": "eq", "value": "CN"}])
    [assignment] = await _service(Feed(targeted), sticky, publisher).assign("user-1", {"country": "US"})
    assert assignment.decision.reason is Reason.NOT_TARGETED
    assert assignment.decision.variant == "v0" and not assignment.exposure_logged
    assert publisher.published == [] and sticky.records == {}


async def test_named_experiments_are_evaluated_in_order_and_an_unknown_one_is_named() -> None:
    service = _service(Feed(_experiment("a"), _experiment("b", status="paused")), MemorySticky(), RecordingPublisher())
    assignments = await service.assign("user-1", {}, ["b", "a"])
    assert [(a.decision.experiment, a.decision.reason) for a in assignments] == [
        ("b", Reason.NOT_RUNNING), ("a", Reason.HASHED),
    ]
    with pytest.raises(NotFound) as raised:
        await service.assign("user-1", {}, ["a", "nope"])
    assert [error.field for error in raised.value.fields] == ["experiments.1"]
    with pytest.raises(NotFound) as single:
        await service.assign("user-1", {}, ["nope"], field="experiment")
    assert [error.field for error in single.value.fields] == ["experiment"]


async def test_a_failed_publish_fails_the_call_and_records_nothing_so_a_retry_logs_again() -> None:
    sticky = MemorySticky()
    with pytest.raises(DependencyUnavailable):
        await _service(Feed(_experiment()), sticky, RecordingPublisher(fail=True)).assign("user-1", {})
    assert sticky.records == {}
    publisher = RecordingPublisher()
    [retry] = await _service(Feed(_experiment()), sticky, publisher).assign("user-1", {})
    assert retry.decision.reason is Reason.HASHED and len(publisher.published) == 1


async def test_without_redis_users_are_still_hashed_and_their_exposures_logged() -> None:
    publisher = RecordingPublisher()
    experiment = _experiment()
    [assignment] = await _service(Feed(experiment), MemorySticky(broken=True), publisher).assign("user-1", {})
    assert assignment.decision.variant == _hashed_variant(experiment, "user-1")
    assert len(publisher.published) == 1


async def test_before_the_definitions_were_ever_loaded_the_answer_is_503_not_404() -> None:
    service = _service(Feed(loaded=False), MemorySticky(), RecordingPublisher())
    with pytest.raises(DependencyUnavailable, match="not loaded"):
        await service.assign("user-1", {}, ["exp"])
