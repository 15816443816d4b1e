from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

from services.assignment.service import AssignmentService, exposure_event_id, started, stopped, variant_for
from splitstream.errors import Conflict, DependencyUnavailable, NotFound
from splitstream.events import EventId, Exposure
from splitstream.experiment import Experiment, ExperimentSpec, ExperimentStatus, Variant
from splitstream.hashing import assign

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class MemoryStore:
    def __init__(self) -> None:
        self.experiments: dict[str, Experiment] = {}
        self.reads = 0

    async def create(self, experiment: Experiment) -> bool:
        if experiment.key in self.experiments:
            return False
        self.experiments[experiment.key] = experiment
        return True

    async def replace(self, experiment: Experiment) -> None:
        self.experiments[experiment.key] = experiment

    async def get(self, key: str) -> Experiment | None:
        self.reads += 1
        return self.experiments.get(key)

    async def get_all(self) -> list[Experiment]:
        return [self.experiments[key] for key in sorted(self.experiments)]


class RecordingPublisher:
    def __init__(self, *, fail: bool = False) -> None:
        self.published: list[Exposure] = []
        self.fail = fail

    async def publish(self, events: Sequence[Exposure]) -> None:
        if self.fail:
            raise DependencyUnavailable("kafka: down")
        self.published.extend(events)


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _spec(key: str = "exp", weights: tuple[float, ...] = (1, 1)) -> ExperimentSpec:
    return ExperimentSpec(key=key, variants=[Variant(key=f"v{i}", weight=w) for i, w in enumerate(weights)])


def _service(
    store: MemoryStore, publisher: RecordingPublisher | None = None, cache_seconds: float = 1.0,
    ticker: Ticker | None = None,
) -> AssignmentService:
    return AssignmentService(
        store, publisher or RecordingPublisher(), cache_seconds=cache_seconds, clock=lambda: NOW,
        monotonic=ticker or Ticker(),
    )


async def test_create_stores_a_draft_salted_by_the_key_unless_told() -> None:
    store = MemoryStore()
    service = _service(store)

    default = await service.create(_spec("a"))
    salted = await service.create(_spec("b"), salt="pepper")

    assert (default.status, default.salt, default.created_at, default.started_at) == (
        ExperimentStatus.DRAFT, "a", NOW, None
    )
    assert salted.salt == "pepper"
    assert store.experiments == {"a": default, "b": salted}


async def test_create_refuses_a_taken_key() -> None:
    service = _service(MemoryStore())
    await service.create(_spec("a"))
    with pytest.raises(Conflict) as caught:
        await service.create(_spec("a", (1, 2)))
    assert [f.field for f in caught.value.fields] == ["key"]


async def test_lifecycle_transitions() -> None:
    draft = Experiment(key="e", variants=_spec().variants, salt="e", created_at=NOW)
    later = NOW + timedelta(hours=1)

    running = started(draft, NOW)
    assert (running.status, running.started_at) == (ExperimentStatus.RUNNING, NOW)
    assert started(running, later) is running
    halted = stopped(running)
    assert (halted.status, halted.started_at) == (ExperimentStatus.STOPPED, NOW)
    assert stopped(halted) is halted
    assert stopped(draft).status is ExperimentStatus.STOPPED
    with pytest.raises(Conflict) as caught:
        started(halted, later)
    assert [f.field for f in caught.value.fields] == ["status"]


async def test_start_and_stop_persist_and_name_a_missing_key() -> None:
    store = MemoryStore()
    service = _service(store)
    await service.create(_spec("e"))

    assert (await service.start("e")).status is ExperimentStatus.RUNNING
    assert store.experiments["e"].status.value == "running"
    assert (await service.stop("e")).status is ExperimentStatus.STOPPED
    assert store.experiments["e"].status.value == "stopped"
    with pytest.raises(NotFound) as caught:
        await service.start("missing")
    assert [f.field for f in caught.value.fields] == ["key"]


async def test_a_running_experiment_assigns_by_hash_and_publishes_the_exposure() -> None:
    publisher = RecordingPublisher()
    service = _service(MemoryStore(), publisher)
    experiment = await service.create(_spec("e", (1, 3)), salt="s")
    await service.start("e")

    assignment = await service.assign("e", "user-7")

    index = assign("s", "user-7", [1, 3])
    assert (assignment.variant, assignment.in_experiment, assignment.reason, assignment.exposure_logged) == (
        experiment.variants[index].key, True, None, True
    )
    assert publisher.published == [
        Exposure(type="exposure", event_id=exposure_event_id("e", "user-7"), user_id="user-7", timestamp=NOW,
                 experiment="e", variant=assignment.variant)
    ]


async def test_without_log_exposure_nothing_is_published() -> None:
    publisher = RecordingPublisher()
    service = _service(MemoryStore(), publisher)
    await service.create(_spec("e"))
    await service.start("e")

    assignment = await service.assign("e", "user-7", log_exposure=False)

    assert (assignment.in_experiment, assignment.exposure_logged) == (True, False)
    assert publisher.published == []


@pytest.mark.parametrize("stop", [False, True])
async def test_outside_a_running_experiment_everyone_gets_control(stop: bool) -> None:
    publisher = RecordingPublisher()
    service = _service(MemoryStore(), publisher)
    await service.create(_spec("e", (1, 1, 1)))
    if stop:
        await service.stop("e")

    answers = {await service.assign("e", f"user-{i}") for i in range(30)}

    status = "stopped" if stop else "draft"
    assert {(a.variant, a.in_experiment, a.reason, a.exposure_logged) for a in answers} == {
        ("v0", False, f"experiment is {status}", False)
    }
    assert publisher.published == []


async def test_a_failed_publish_fails_the_assignment() -> None:
    service = _service(MemoryStore(), RecordingPublisher(fail=True))
    await service.create(_spec("e"))
    await service.start("e")
    with pytest.raises(DependencyUnavailable):
        await service.assign("e", "user-1")


async def test_an_unknown_experiment_names_the_query_field() -> None:
    with pytest.raises(NotFound) as caught:
        await _service(MemoryStore()).assign("nope", "user-1")
    assert [f.field for f in caught.value.fields] == ["experiment"]


async def test_definitions_are_reread_only_after_the_ttl() -> None:
    store, ticker = MemoryStore(), Ticker()
    service = _service(store, cache_seconds=1.0, ticker=ticker)
    await service.create(_spec("e"))
    await service.assign("e", "u", log_exposure=False)
    reads = store.reads

    ticker.now = 0.9
    await service.assign("e", "u", log_exposure=False)
    assert store.reads == reads
    ticker.now = 1.0
    await service.assign("e", "u", log_exposure=False)
    assert store.reads == reads + 1


async def test_a_zero_ttl_reads_the_store_every_time() -> None:
    store = MemoryStore()
    service = _service(store, cache_seconds=0)
    await service.create(_spec("e"))
    for _ in range(3):
        await service.assign("e", "u", log_exposure=False)
    assert store.reads == 3


async def test_a_lifecycle_change_reaches_this_instance_cache_at_once() -> None:
    service = _service(MemoryStore(), cache_seconds=3600)
    await service.create(_spec("e"))
    assert (await service.assign("e", "u", log_exposure=False)).in_experiment is False

    await service.start("e")
    assert (await service.assign("e", "u", log_exposure=False)).in_experiment is True
    await service.stop("e")
    assert (await service.assign("e", "u", log_exposure=False)).reason == "experiment is stopped"


def test_exposure_event_ids_are_stable_valid_and_distinct_per_pair() -> None:
    event_id = exposure_event_id("e", "user-1")
    assert event_id == exposure_event_id("e", "user-1")
    assert TypeAdapter(EventId).validate_python(event_id) == event_id
    others = {exposure_event_id("e", "user-2"), exposure_event_id("f", "user-1"), exposure_event_id("e", "user-10")}
    assert event_id not in others and len(others) == 3


def test_variant_for_uses_the_salt() -> None:
    base = Experiment(key="e", variants=_spec("e", (1, 1, 1, 1)).variants, salt="one", created_at=NOW)
    resalted = base.model_copy(update={"salt": "two"})
    users = [f"user-{i}" for i in range(200)]

    assert [variant_for(base, u).key for u in users] == [f"v{assign('one', u, base.weights)}" for u in users]
    assert [variant_for(base, u) for u in users] != [variant_for(resalted, u) for u in users]
