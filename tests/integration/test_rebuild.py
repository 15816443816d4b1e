"""`rebuild` reproduces the statistics exactly, on the real broker and Redis, and refuses when it could not.

An in-process aggregator folds a topic of exposures (with a segment attribute) and events, with duplicates, events
that arrive before their exposure, an exposure to an unknown experiment and undecodable records. Every key under
the prefix is then read (strings, hashes, sets, lists, whether each expires), the derived keys damaged, the topic
replayed by the rebuild: every key must read back as before, byte for byte.

Fractional values are replayed on a one-partition topic: a float sum's last bits depend on the order of its terms,
so a sum over users of several partitions depends on how the partitions interleaved, which the live consumer's
fetches decided and no replay can repeat (services/collector/rebuild.py). On four partitions the values are whole
numbers, whose sums are exact in any order, so equality is still byte for byte there.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from services.collector.adapters.fold import read_stats
from services.collector.aggregator import Aggregator
from services.collector.config import CollectorSettings
from services.collector.rebuild import Rebuild, RebuildRefused
from services.collector.rebuild_state import staging_keys
from splitstream.eventlog import EVENTS_TOPIC_CONFIGS, EventLog, ensure_topics
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus, Metric, MetricType, Variant
from splitstream.keys import USER_RECORD_SEPARATOR, user_place
from splitstream.registry import ExperimentRegistry
from tests.integration.conftest import Store, copy_to_cluster
from tests.integration.consumer_processes import GroupView, eventually

pytestmark = pytest.mark.integration

EXPERIMENT = "rebuild-checkout"
VARIANTS = ("control", "treatment")
CHANNELS = ("web", "app", "mini_program")
Event = Exposure | TrackEvent
Snapshot = dict[str, tuple[str, Any, bool]]


def the_experiment() -> Experiment:
    return Experiment(
        key=EXPERIMENT,
        variants=[Variant(key=key) for key in VARIANTS],
        metrics=[
            Metric(key="converted", type=MetricType.BINOMIAL, event="purchase"),
            Metric(key="revenue", type=MetricType.MEAN, event="purchase"),
            Metric(key="capped_revenue", type=MetricType.MEAN, event="purchase", cap=120.0),
            Metric(key="pageviews", type=MetricType.MEAN, event="pageview", conversion_window_hours=0.5),
        ],
        segments=["channel"],
        status=ExperimentStatus.RUNNING,
        salt="salt",
        created_at=datetime.now(UTC),
    )


def traffic(users: int, *, seed: int, id_prefix: str, fractional: bool) -> list[Event]:
    """Exposures (9 users in 10) with a channel, purchases and page views from 10 minutes before to an hour after,
    a purchase two days before for 1 user in 5 (a CUPED covariate), shuffled (so some events come before their
    exposure), plus re-sent copies of 1 record in 20 and a second
    exposure, to the other variant, of 1 exposed user in 20 (the first must win)."""
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(hours=2)
    received = datetime.now(UTC)
    records: list[Event] = []
    for index in range(users):
        user = f"{id_prefix}-u{index}"
        exposed_ms = rng.randrange(3_600_000)
        at = [base + timedelta(milliseconds=exposed_ms + rng.randrange(-600_000, 3_600_000)) for _ in range(6)]
        if rng.random() < 0.9:
            variant = rng.choice(VARIANTS)
            records.append(Exposure(
                type="exposure", event_id=f"{id_prefix}-x{index}", user_id=user, experiment=EXPERIMENT,
                variant=variant, timestamp=base + timedelta(milliseconds=exposed_ms),
                attributes={"channel": rng.choice(CHANNELS)},
            ))
            if rng.random() < 0.05:
                other = VARIANTS[1 - VARIANTS.index(variant)]
                records.append(Exposure(
                    type="exposure", event_id=f"{id_prefix}-x{index}-again", user_id=user, experiment=EXPERIMENT,
                    variant=other, timestamp=at[0],
                ))
        for order in range(rng.randrange(4)):
            value = round(rng.uniform(0.5, 200), 2) if fractional else float(rng.randint(1, 200))
            records.append(TrackEvent(
                type="event", event_id=f"{id_prefix}-p{index}-{order}", user_id=user, name="purchase", value=value,
                timestamp=at[1 + order], received_at=received,
            ))
        if rng.random() < 0.2:  # before the exposure's day: the CUPED covariate's pre-period
            value = round(rng.uniform(0.5, 200), 2) if fractional else float(rng.randint(1, 200))
            records.append(TrackEvent(
                type="event", event_id=f"{id_prefix}-b{index}", user_id=user, name="purchase", value=value,
                timestamp=base - timedelta(days=2), received_at=received - timedelta(days=2),
            ))
        for order in range(rng.randrange(3)):
            records.append(TrackEvent(
                type="event", event_id=f"{id_prefix}-v{index}-{order}", user_id=user, name="pageview",
                timestamp=at[4 + order], received_at=received,
            ))
    records.append(Exposure(
        type="exposure", event_id=f"{id_prefix}-orphan", user_id=f"{id_prefix}-u0", experiment="no-such-experiment",
        variant="control", timestamp=base,
    ))
    rng.shuffle(records)
    resent = [rng.choice(records) for _ in range(len(records) // 20)]
    for record in resent:
        records.insert(rng.randrange(len(records) + 1), record)
    return records


UNDECODABLE = [b"not json", orjson.dumps({"type": "event", "event_id": "no-user"})]


async def publish(settings: CollectorSettings, records: list[Event], *, with_undecodable: bool = False) -> None:
    log = EventLog(settings.kafka_bootstrap_servers, settings.events_topic)
    await log.start()
    try:
        half = len(records) // 2
        await log.publish(records[:half])
        if with_undecodable:
            for value in UNDECODABLE:
                await log.publish_record(settings.events_topic, b"someone", value)
        await log.publish(records[half:])
    finally:
        await log.stop()


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def everything_under(redis: Redis | RedisCluster, prefix: str) -> Snapshot:
    """Every key under ``prefix``: its type, its whole value, and whether it expires."""
    snapshot: Snapshot = {}
    async for raw in redis.scan_iter(match=f"{prefix}:*", count=1000):
        kind = _text(await redis.type(raw))
        value: Any
        if kind == "string":
            value = await redis.get(raw)
        elif kind == "hash":
            value = await redis.hgetall(raw)
        elif kind == "set":
            value = frozenset(await redis.smembers(raw))
        elif kind == "list":
            value = tuple(await redis.lrange(raw, 0, -1))
        else:
            raise AssertionError(f"unexpected {kind} at {raw!r}")
        snapshot[_text(raw)] = (kind, value, await redis.ttl(raw) > 0)
    return snapshot


def differences(before: Snapshot, after: Snapshot) -> str:
    gone, new = sorted(before.keys() - after.keys()), sorted(after.keys() - before.keys())
    changed = sorted(key for key in before.keys() & after.keys() if before[key] != after[key])
    details = [f"{key}: {before[key]} -> {after[key]}" for key in changed[:3]]
    return f"missing {gone[:5]}, extra {new[:5]}, changed {len(changed)}: {details}"


async def group_members(settings: CollectorSettings) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        description = (await admin.describe_consumer_groups([settings.consumer_group]))[0].to_object()
    finally:
        await admin.close()
    return len(description["groups"][0]["members"])


async def consume_everything(settings: CollectorSettings, redis: Redis | RedisCluster, group: GroupView) -> None:
    """An in-process aggregator on the group until the group has committed every record, then stopped."""
    aggregator = Aggregator(settings, redis, poll_timeout_ms=100)
    running = asyncio.create_task(aggregator.run_until_stopped())
    try:
        await eventually(group.caught_up, "the aggregator committed every record", within=40)
    finally:
        aggregator.stop()
        await asyncio.wait_for(running, timeout=20)


async def _settings(common_settings: dict[str, str], unique: str, partitions: int) -> CollectorSettings:
    created = CollectorSettings(
        **common_settings, consumer_group=f"rebuild-{unique}", consumer_metrics_port=0  # type: ignore[arg-type]
    )
    bootstrap = created.kafka_bootstrap_servers
    await ensure_topics(bootstrap, [created.events_topic], partitions, EVENTS_TOPIC_CONFIGS)
    await ensure_topics(bootstrap, [created.dead_letter_topic], partitions)
    return created


@pytest.fixture
async def staging_cleared(redis: Redis, cluster_redis: RedisCluster, common_settings: dict[str, str],
                          ) -> AsyncIterator[None]:
    """Afterwards, nothing is left under the staging prefix (also when a test failed half-way)."""
    yield
    prefix = staging_keys(CollectorSettings(**common_settings).redis_keys).prefix  # type: ignore[arg-type]
    for client in (redis, cluster_redis):
        stale = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if stale:
            await client.delete(*stale)


async def add_records_no_replay_can_make(redis: Redis | RedisCluster, settings: CollectorSettings) -> None:
    """Keys the rebuild must keep as they are: the audit trail, the analyzer's looks and snapshots, a sticky
    assignment, a layer."""
    keys = settings.redis_keys
    await redis.rpush(keys.history(EXPERIMENT), orjson.dumps({"action": "create", "changes": {}}))
    await redis.rpush(keys.looks(EXPERIMENT), orjson.dumps({"look": 1, "users": 10}))
    await redis.rpush(keys.snapshots(EXPERIMENT), orjson.dumps({"at": "2024-05-01T00:00:00Z", "variants": {}}))
    await redis.hset(keys.sticky("user_id", "someone"), f"{EXPERIMENT}#1", "control")
    await redis.hset(keys.layers, "checkout", orjson.dumps({"key": "checkout"}))


async def damage(redis: Redis | RedisCluster, settings: CollectorSettings, records: list[Event]) -> None:
    """What a rebuild is for: a lost hash, a wrong user, keys that should not be there, a counter gone astray."""
    keys = settings.redis_keys
    exposed = next(record for record in records if isinstance(record, Exposure) and record.experiment == EXPERIMENT)
    await redis.delete(keys.variant_stats(EXPERIMENT, "control"))
    place = user_place(exposed.user_id)
    await redis.hset(keys.exposed_users(EXPERIMENT, place.bucket), place.field, f"v=ghost{USER_RECORD_SEPARATOR}t=0")
    # A hash per exposed user, as versions before the buckets kept them: a rebuild removes it.
    await redis.hset(f"{keys.prefix}:exp:{{{EXPERIMENT}}}:u:{exposed.user_id}", "variant", "control")
    await redis.hset(keys.variant_stats(EXPERIMENT, "ghost"), "users", 99)
    await redis.hset(keys.user_state("ghost"), "ghost-event", "1")
    await redis.incrby(keys.stats("applied"), 1000)


@pytest.mark.parametrize(
    ("partitions", "fractional"), [(1, True), (4, False)],
    ids=["one-partition-fractional-values", "four-partitions-whole-values"],
)
async def test_rebuild_reproduces_the_statistics_exactly(
    common_settings: dict[str, str], unique: str, store: Store, redis: Redis, staging_cleared: None,
    partitions: int, fractional: bool,
) -> None:
    settings = await _settings({**common_settings, "redis_url": store.url}, unique, partitions)
    assert await ExperimentRegistry(redis, settings.redis_keys).create(the_experiment())
    client = store.client
    if isinstance(client, RedisCluster):
        await copy_to_cluster(redis, client, settings.redis_prefix)
    await add_records_no_replay_can_make(client, settings)
    records = traffic(300, seed=partitions, id_prefix=settings.redis_prefix, fractional=fractional)
    await publish(settings, records, with_undecodable=True)
    prefix = settings.redis_prefix

    async with GroupView(settings.kafka_bootstrap_servers, settings.events_topic, settings.consumer_group,
                         partitions) as group:
        await consume_everything(settings, client, group)
        live = await everything_under(client, prefix)
        ends = await group.end_offsets()
        await damage(client, settings, records)
        await eventually(lambda: _no_members(settings), "the stopped aggregator left the group", within=15)

        report = await Rebuild(settings, client).run()

        rebuilt = await everything_under(client, prefix)
        committed = await group.committed()

    distinct = len({record.event_id for record in records})
    variant_stats = live[settings.redis_keys.variant_stats(EXPERIMENT, "treatment")][1]
    print(f"\n{len(records) + len(UNDECODABLE)} records on {partitions} partition(s), {len(live)} keys; report: "
          f"{report.replayed} replayed, {report.applied} applied, {report.duplicates} duplicates, "
          f"{report.dead_letters} dead letters, swapped {report.renamed}, {report.deleted} deleted, "
          f"{report.seconds:.2f}s; treatment {variant_stats}")
    assert rebuilt == live, differences(live, rebuilt)
    assert report.mark == ends and committed == ends
    assert report.records == len(records) + len(UNDECODABLE) == sum(ends.values())
    assert (report.applied, report.duplicates, report.dead_letters) == (
        distinct, len(records) - distinct, len(UNDECODABLE)
    )
    assert report.orphan_exposures == 1
    assert report.deleted == 3  # the ghost variant hash, the ghost dedup mark and the old-style user hash
    keys = settings.redis_keys
    not_derived = {
        keys.experiments, keys.experiment(EXPERIMENT), keys.event_metrics("purchase"), keys.event_metrics("pageview"),
        *(name for name in live if name.startswith(f"{prefix}:exp:{{{EXPERIMENT}}}:") and name.endswith(
            (":history", ":looks", ":snapshots"))),
        keys.sticky("user_id", "someone"), keys.layers,
    }
    assert len(not_derived) == 9 and not_derived <= live.keys()
    assert report.keys_swapped == len(live.keys() - not_derived)
    assert not [key async for key in client.scan_iter(match=f"{staging_keys(settings.redis_keys).prefix}:*")]

    # Restarted consumers go on right after the replayed records: the next ones count once, nothing twice.
    later = traffic(5, seed=99, id_prefix=f"{prefix}-later", fractional=fractional)
    await publish(settings, later)
    async with GroupView(settings.kafka_bootstrap_servers, settings.events_topic, settings.consumer_group,
                         partitions) as group:
        await consume_everything(settings, client, group)
    later_distinct = len({record.event_id for record in later})
    assert await read_stats(client, settings.redis_keys) == {
        "applied": distinct + later_distinct, "duplicates": len(records) - distinct + len(later) - later_distinct,
        "orphan_exposures": 2, "overflow": 0, "poison": len(UNDECODABLE),
    }


async def _no_members(settings: CollectorSettings) -> bool:
    return await group_members(settings) == 0


async def test_rebuild_refuses_while_a_consumer_of_the_group_runs(
    common_settings: dict[str, str], unique: str, redis: Redis, staging_cleared: None
) -> None:
    settings = await _settings(common_settings, unique, 1)
    assert await ExperimentRegistry(redis, settings.redis_keys).create(the_experiment())
    await publish(settings, traffic(20, seed=3, id_prefix=settings.redis_prefix, fractional=True))
    aggregator = Aggregator(settings, redis, poll_timeout_ms=100)
    running = asyncio.create_task(aggregator.run_until_stopped())
    try:
        async with GroupView(settings.kafka_bootstrap_servers, settings.events_topic, settings.consumer_group,
                             1) as group:
            await eventually(group.caught_up, "the aggregator committed every record", within=40)
        assert await group_members(settings) == 1
        before = await everything_under(redis, settings.redis_prefix)
        with pytest.raises(RebuildRefused, match=rf"{settings.consumer_group} has 1 active member"):
            await Rebuild(settings, redis).run()
        assert not [key async for key in redis.scan_iter(match=f"{staging_keys(settings.redis_keys).prefix}:*")]
        assert await everything_under(redis, settings.redis_prefix) == before
    finally:
        aggregator.stop()
        await asyncio.wait_for(running, timeout=20)


async def test_rebuild_refuses_a_topic_that_lost_its_first_records(
    common_settings: dict[str, str], unique: str, redis: Redis, staging_cleared: None
) -> None:
    settings = await _settings(common_settings, unique, 1)
    await publish(settings, traffic(5, seed=4, id_prefix=settings.redis_prefix, fractional=True))
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(settings.events_topic, 0): RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()

    with pytest.raises(RebuildRefused, match=r"no longer holds its first records \(earliest offset per partition: "
                                             r"\{0: 2\}\)"):
        await Rebuild(settings, redis).run()
    assert not [key async for key in redis.scan_iter(match=f"{staging_keys(settings.redis_keys).prefix}:*")]


async def test_rebuild_refuses_experiments_whose_fold_rules_changed_unless_told_to_use_todays(
    common_settings: dict[str, str], unique: str, redis: Redis, staging_cleared: None
) -> None:
    settings = await _settings(common_settings, unique, 1)
    keys = settings.redis_keys
    experiment = the_experiment()
    assert await ExperimentRegistry(redis, keys).create(experiment)
    metrics = [metric.model_dump(mode="json") for metric in experiment.metrics]
    repointed = [{**metric, "event": "order"} if metric["key"] == "revenue" else metric for metric in metrics]
    await redis.rpush(keys.history(EXPERIMENT), orjson.dumps(
        {"action": "update", "changes": {"metrics": {"before": metrics, "after": repointed}}}
    ))

    with pytest.raises(RebuildRefused, match=rf"{EXPERIMENT}: metrics"):
        await Rebuild(settings, redis).run()
    report = await Rebuild(settings, redis, with_current_definitions=True).run()

    assert report.definitions_changed == {EXPERIMENT: ["metrics"]}
    assert report.records == 0 and report.mark == {0: 0}
