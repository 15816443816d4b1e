from datetime import UTC, datetime
from typing import Any

import pytest

from services.assignment.adapters.sticky import StickyKey, StickyValue
from services.assignment.service import AssignmentService
from splitstream.errors import DependencyUnavailable, NotFound
from splitstream.evaluation import Reason, exposure_event_id, sticky_field
from splitstream.events import Exposure
from splitstream.experiment import Experiment
from splitstream.hashing import bucket, variant_index
from tests.unit.assignment.fakes import Feed, MemorySticky, RecordingPublisher

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _experiment(key: str = "exp", *, weights: tuple[float, ...] = (0.5, 0.5), **fields: Any) -> Experiment:
    return Experiment.model_validate({
        "key": key, "salt": key, "created_at": NOW, "status": "running",
        "variants": [{"key": f"v{i}", "weight": w, "payload": {"title": f"t{i}"}} for i, w in enumerate(weights)],
        **fields,
    })


def _service(feed: Feed, sticky: MemorySticky, publisher: RecordingPublisher) -> AssignmentService:
    return AssignmentService(feed, sticky, publisher, clock=lambda: NOW)


def _hashed_variant(experiment: Experiment, user: str) -> str:
    index = variant_index(experiment.weights, experiment.coverage, bucket(experiment.salt, user))
    assert index is not None
    return experiment.variants[index].key


async def test_a_first_assignment_is_hashed_logged_once_and_recorded() -> None:
    experiment = _experiment()
    sticky, publisher = MemorySticky(), RecordingPublisher()
    [assignment] = (await _service(Feed(experiment), sticky, publisher).assign("user-1", {})).assignments

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
    [again] = (await service.assign("user-1", {})).assignments
    assert again.decision.reason is Reason.STICKY
    assert again.exposure_logged
    assert len(publisher.published) == 1


async def test_an_unlogged_assignment_hands_back_its_exposure_and_a_later_logged_call_publishes_it() -> None:
    sticky, publisher = MemorySticky(), RecordingPublisher()
    service = _service(Feed(_experiment()), sticky, publisher)
    [quiet] = (await service.assign("user-1", {}, log_exposure=False)).assignments
    assert publisher.published == []
    assert not quiet.exposure_logged
    assert quiet.exposure is not None and quiet.exposure.event_id == exposure_event_id("exp", 1, "user-1")

    [logged] = (await service.assign("user-1", {})).assignments
    assert logged.decision.reason is Reason.STICKY and logged.exposure_logged
    assert [event.event_id for event in publisher.published] == [quiet.exposure.event_id]
    [third] = (await service.assign("user-1", {})).assignments
    assert third.exposure_logged and len(publisher.published) == 1


async def test_a_weight_change_moves_nobody_already_assigned_but_a_new_phase_does() -> None:
    users = [f"user-{i}" for i in range(300)]
    before = _experiment(weights=(0.5, 0.5))
    sticky, publisher = MemorySticky(), RecordingPublisher()
    service = _service(Feed(before), sticky, publisher)
    first = {u: (await service.assign(u, {})).assignments[0].decision.variant for u in users}

    reweighted = before.model_copy(update={"variants": [
        before.variants[0].model_copy(update={"weight": 0.1}), before.variants[1].model_copy(update={"weight": 0.9}),
    ]})
    service = _service(Feed(reweighted), sticky, publisher)
    after = {u: (await service.assign(u, {})).assignments[0].decision for u in users}
    assert {u: d.variant for u, d in after.items()} == first
    assert {d.reason for d in after.values()} == {Reason.STICKY}

    new_phase = reweighted.model_copy(update={"phase": 2})
    service = _service(Feed(new_phase), sticky, publisher)
    rehashed = {u: (await service.assign(u, {})).assignments[0].decision for u in users}
    assert {d.reason for d in rehashed.values()} == {Reason.HASHED}
    assert {u: d.variant for u, d in rehashed.items()} == {u: _hashed_variant(new_phase, u) for u in users}
    assert sum(d.variant == "v1" for d in rehashed.values()) > 0.8 * len(users)


async def test_one_sticky_lookup_serves_every_experiment_of_the_request() -> None:
    sticky = MemorySticky()
    feed = Feed(
        _experiment("a"), _experiment("b"), _experiment("c", unit="device_id"), _experiment("d", status="draft")
    )
    service = _service(feed, sticky, RecordingPublisher())
    assignments = (await service.assign("user-1", {"device_id": "dev-9"})).assignments
    assert [a.decision.experiment for a in assignments] == ["a", "b", "c"]  # the draft is not live
    assert sticky.lookups == [[
        StickyKey("user_id", "user-1", sticky_field("a", 1)), StickyKey("user_id", "user-1", sticky_field("b", 1)),
        StickyKey("device_id", "dev-9", sticky_field("c", 1)),
    ]]


async def test_decisions_outside_the_experiment_log_and_record_nothing() -> None:
    sticky, publisher = MemorySticky(), RecordingPublisher()
    targeted = _experiment(targeting=[{"attribute": "country", "op": "eq", "value": "CN"}])
    [assignment] = (await _service(Feed(targeted), sticky, publisher).assign("user-1", {"country": "US"})).assignments
    assert assignment.decision.reason is Reason.NOT_TARGETED
    assert assignment.decision.variant == "v0" and not assignment.exposure_logged
    assert publisher.published == [] and sticky.records == {}


async def test_named_experiments_are_evaluated_in_order_and_an_unknown_one_is_named() -> None:
    service = _service(Feed(_experiment("a"), _experiment("b", status="paused")), MemorySticky(), RecordingPublisher())
    assignments = (await service.assign("user-1", {}, ["b", "a"])).assignments
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
    [retry] = (await _service(Feed(_experiment()), sticky, publisher).assign("user-1", {})).assignments
    assert retry.decision.reason is Reason.HASHED and len(publisher.published) == 1


async def test_without_redis_users_are_still_hashed_and_their_exposures_logged() -> None:
    publisher = RecordingPublisher()
    experiment = _experiment()
    service = _service(Feed(experiment), MemorySticky(broken=True), publisher)
    [assignment] = (await service.assign("user-1", {})).assignments
    assert assignment.decision.variant == _hashed_variant(experiment, "user-1")
    assert len(publisher.published) == 1


async def test_before_the_definitions_were_ever_loaded_the_answer_is_503_not_404() -> None:
    service = _service(Feed(loaded=False), MemorySticky(), RecordingPublisher())
    with pytest.raises(DependencyUnavailable, match="not loaded"):
        await service.assign("user-1", {}, ["exp"])


async def test_only_an_answer_that_changed_nothing_and_read_every_record_is_repeatable() -> None:
    sticky, publisher = MemorySticky(), RecordingPublisher()
    service = _service(Feed(_experiment(), _experiment("aimed", targeting=[
        {"attribute": "country", "op": "eq", "value": "FR"},
    ])), sticky, publisher)
    first = await service.assign("user-1", {"country": "CN"})
    assert [a.decision.reason for a in first.assignments] == [Reason.HASHED, Reason.NOT_TARGETED]
    assert not first.repeatable  # an exposure logged, a sticky record written
    again = await service.assign("user-1", {"country": "CN"})
    assert [a.decision.reason for a in again.assignments] == [Reason.STICKY, Reason.NOT_TARGETED]
    assert again.repeatable

    quiet = await service.assign("user-2", {}, log_exposure=False)
    assert not quiet.repeatable  # a sticky record written, an exposure handed back
    still_quiet = await service.assign("user-2", {}, log_exposure=False)
    assert still_quiet.assignments[0].exposure is not None and not still_quiet.repeatable

    # Nobody is in coverage now, but a unit may hold a record from when more were: unread, it must not be trusted.
    down = _service(Feed(_experiment(coverage=0.0)), MemorySticky(broken=True), RecordingPublisher())
    unread = await down.assign("user-1", {})
    assert unread.assignments[0].decision.reason is Reason.NOT_IN_COVERAGE and not unread.repeatable


async def test_a_ramp_step_still_ahead_makes_every_answer_about_it_unrepeatable() -> None:
    past = {"at": datetime(2026, 2, 1, tzinfo=UTC), "coverage": 0.5}
    ahead = {"at": datetime(2026, 3, 2, tzinfo=UTC), "coverage": 1.0}
    for ramp, repeatable in (([past], True), ([past, ahead], False)):
        sticky = MemorySticky()
        service = _service(Feed(_experiment(coverage=0.1, ramp=ramp)), sticky, RecordingPublisher())
        users = [f"user-{index}" for index in range(40)]
        for user in users:
            await service.assign(user, {})
        answers = [await service.assign(user, {}) for user in users]  # the second visit of each
        assert {answer.repeatable for answer in answers} == {repeatable}
