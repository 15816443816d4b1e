"""Every event counted exactly once by real consumer processes on the real broker and Redis: two consumers sharing a
group's partitions, and a consumer killed with SIGKILL between folding a batch and committing it, then replaced.
Each runs on a standalone Redis (one fold call per batch) and on a Redis Cluster of three nodes (the fold in steps).

The expected statistics are computed from the published events with numpy (tests/integration/synthetic_traffic.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from services.collector.adapters.fold import read_stats
from services.collector.config import CollectorSettings
from splitstream.eventlog import EventLog, ensure_topics
from splitstream.experiment import Experiment
from splitstream.registry import ExperimentRegistry
from tests.integration.conftest import Store, copy_to_cluster
from tests.integration.consumer_processes import ConsumerProcess, GroupView, eventually
from tests.integration.synthetic_traffic import Event, expected_statistics, stored_statistics, the_experiment, traffic

pytestmark = pytest.mark.integration

PARTITIONS = 4
PUBLISH_CHUNK = 5_000


@pytest.fixture
async def settings(common_settings: dict[str, str], unique: str, store: Store) -> CollectorSettings:
    created = CollectorSettings(
        **{**common_settings, "redis_url": store.url}, consumer_group=f"exactly-once-{unique}",
        consumer_metrics_port=0,  # type: ignore[arg-type]
    )
    await ensure_topics(
        created.kafka_bootstrap_servers, [created.events_topic, created.dead_letter_topic], partitions=PARTITIONS
    )
    return created


@pytest.fixture
async def experiment(redis: Redis, store: Store, settings: CollectorSettings) -> Experiment:
    created = the_experiment()
    assert await ExperimentRegistry(redis, settings.redis_keys).create(created)
    if isinstance(store.client, RedisCluster):
        await copy_to_cluster(redis, store.client, settings.redis_prefix)
    return created


def group_view(settings: CollectorSettings) -> GroupView:
    return GroupView(settings.kafka_bootstrap_servers, settings.events_topic, settings.consumer_group, PARTITIONS)


async def publish(settings: CollectorSettings, records: list[Event]) -> None:
    log = EventLog(settings.kafka_bootstrap_servers, settings.events_topic)
    await log.start()
    try:
        for start in range(0, len(records), PUBLISH_CHUNK):
            await log.publish(records[start:start + PUBLISH_CHUNK])
    finally:
        await log.stop()


async def test_two_consumer_processes_split_the_partitions_and_count_every_event_once(
    settings: CollectorSettings, store: Store, experiment: Experiment, tmp_path: Path
) -> None:
    redis = store.client
    records = traffic(2_000, seed=1, id_prefix=settings.redis_prefix)
    consumers: list[ConsumerProcess] = []
    try:
        for name in ("first", "second"):
            consumers.append(await ConsumerProcess.start(settings, settings.consumer_group, tmp_path / f"{name}.log"))
        async with group_view(settings) as group:

            async def both_own_partitions() -> list[frozenset[int]] | None:
                members = await group.stable_assignment()
                return members if members is not None and len(members) == 2 and all(members) else None

            # Publishing only once both are members, so that neither can fold everything before the other joins.
            assignment = await eventually(both_own_partitions, "both consumers own partitions", within=25)
            await publish(settings, records)
            await eventually(group.caught_up, "the group committed every record", within=30)
            ends = await group.end_offsets()
        applied_by_process = sorted([await consumer.events_counter("applied") for consumer in consumers])
        for consumer in consumers:
            assert await consumer.stop() == 0, consumer.output()
    finally:
        for consumer in consumers:
            await consumer.reap()

    stats = await read_stats(redis, settings.redis_keys)
    print(f"\n{len(records)} records; partitions per member {sorted(map(sorted, assignment))}; "
          f"applied per process {applied_by_process}; end offsets {ends}; counters {stats}")
    assert set().union(*assignment) == set(range(PARTITIONS)) and sum(map(len, assignment)) == PARTITIONS
    # Each process applied exactly the records of the partitions it owns: the group split the work, without overlap.
    assert applied_by_process == sorted(float(sum(ends[p] for p in member)) for member in assignment)
    assert stats == {"applied": len(records), "duplicates": 0, "orphan_exposures": 0, "overflow": 0, "poison": 0}
    assert await stored_statistics(redis, settings.redis_keys, experiment) == expected_statistics(records, experiment)


@dataclass(frozen=True)
class Crash:
    applied: int
    committed: dict[int, int]
    freezes: int

    @property
    def applied_not_committed(self) -> int:
        """Records folded into Redis whose offsets the group had not committed: the next owner reads them again."""
        return self.applied - sum(self.committed.values())


async def crash_between_fold_and_commit(
    consumer: ConsumerProcess, redis: Redis | RedisCluster, settings: CollectorSettings, group: GroupView, total: int
) -> Crash:
    """SIGKILL ``consumer`` at a moment when a batch is in Redis but its offsets are not committed.

    Once a third of ``total`` is applied (so the group has committed offsets to resume from), and right after Redis
    shows a new batch, SIGSTOP freezes the consumer; once Redis and the broker have settled (a request already on
    its way still lands), compare events applied with offsets committed. A gap means the consumer stopped between
    fold and commit: SIGKILL it there. Otherwise let it go on to its next batch; past 90% of ``total``, kill it
    wherever it stands (then no redelivery is expected, and the test says so exactly).
    """
    keys = settings.redis_keys
    last_seen, freezes = 0, 0
    while True:
        deadline = time.monotonic() + 30
        # A tight loop (each read is a Redis round trip) so the freeze lands close after the fold.
        while (applied := (await read_stats(redis, keys))["applied"]) == last_seen or applied < total / 3:
            assert time.monotonic() < deadline, f"no batch folded within 30s:\n{consumer.output()}"
            assert consumer.process.returncode is None, consumer.output()
            await asyncio.sleep(0)
        consumer.freeze()
        freezes += 1
        applied, committed = await _settled(redis, settings, group)
        if applied - sum(committed.values()) > 0 or applied >= 0.9 * total:
            await consumer.crash()
            return Crash(applied, committed, freezes)
        consumer.thaw()
        last_seen = applied


async def _settled(
    redis: Redis | RedisCluster, settings: CollectorSettings, group: GroupView
) -> tuple[int, dict[int, int]]:
    """Events applied and offsets committed, read until two readings 100 ms apart agree."""
    previous: tuple[int, dict[int, int]] | None = None
    deadline = time.monotonic() + 5
    while True:
        reading = ((await read_stats(redis, settings.redis_keys))["applied"], await group.committed())
        if reading == previous:
            return reading
        assert time.monotonic() < deadline, f"applied and committed offsets still moving: {reading}"
        previous = reading
        await asyncio.sleep(0.1)


async def test_a_consumer_killed_between_fold_and_commit_and_replaced_counts_every_event_once(
    settings: CollectorSettings, store: Store, experiment: Experiment, tmp_path: Path
) -> None:
    redis = store.client
    records = traffic(11_400, seed=2, id_prefix=settings.redis_prefix)
    began = time.monotonic()
    await publish(settings, records)
    published_in = time.monotonic() - began
    consumers: list[ConsumerProcess] = []
    try:
        async with group_view(settings) as group:
            consumers.append(await ConsumerProcess.start(settings, settings.consumer_group, tmp_path / "killed.log"))
            crash = await crash_between_fold_and_commit(consumers[0], redis, settings, group, len(records))
            began = time.monotonic()
            # The replacement joins the same group: it waits out the killed member's session, then resumes from the
            # committed offsets.
            consumers.append(await ConsumerProcess.start(settings, settings.consumer_group, tmp_path / "restarted.log"))
            await eventually(group.caught_up, "the group committed every record", within=40)
            caught_up_in = time.monotonic() - began
        replacement = consumers[1]
        replacement_applied = await replacement.events_counter("applied")
        replacement_duplicates = await replacement.events_counter("duplicate")
        assert await replacement.stop() == 0, replacement.output()
    finally:
        for consumer in consumers:
            await consumer.reap()

    stats = await read_stats(redis, settings.redis_keys)
    print(f"\n{len(records)} records published in {published_in:.1f}s; killed after {crash.freezes} freeze(s) with "
          f"{crash.applied} applied and {sum(crash.committed.values())} committed {crash.committed}; replacement "
          f"caught up in {caught_up_in:.1f}s, applied {replacement_applied:.0f}, skipped {replacement_duplicates:.0f} "
          f"duplicates; counters {stats}")
    assert 0 < sum(crash.committed.values()) <= crash.applied < len(records)
    assert await stored_statistics(redis, settings.redis_keys, experiment) == expected_statistics(records, experiment)
    assert (stats["orphan_exposures"], stats["overflow"], stats["poison"]) == (0, 0, 0)
    # Every delivery is counted once, as applied or as a duplicate: each record once, and the records folded but not
    # committed twice.
    assert stats["applied"] + stats["duplicates"] == len(records) + crash.applied_not_committed
    if store.clustered:
        # The kill may cut the next batch between its steps, after some of its dedup marks were written: those events
        # then come back as duplicates never counted as applied (the counters are added up after the steps).
        assert stats["duplicates"] >= crash.applied_not_committed
        return
    # Exactly the records folded but not committed come back, and the seen marks skip each of them.
    assert stats["duplicates"] == crash.applied_not_committed
    assert replacement_duplicates == crash.applied_not_committed
    assert replacement_applied == len(records) - crash.applied
    assert stats["applied"] == len(records)
