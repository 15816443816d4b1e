"""``splitstream rebuild``: replay the events topic from its start into fresh Redis keys and swap them in.

For when the statistics in Redis cannot be trusted any more (a fold bug since fixed, keys lost or damaged): the
events topic holds every accepted event, so the statistics can be derived again from it.

Steps (each refusal happens before anything is written):

1. Refuse while the aggregation consumer group has members (``force`` skips this: for members that are gone but
   not yet expired by the broker). A live consumer would go on folding into the live keys, and its commits would
   move the offsets this rebuild sets.
2. Refuse if an experiment changed, since its creation, a field the fold reads (phase, variant keys, metrics,
   segments, the CUPED lookback; ``rebuild_state.fold_relevant_changes``): the replay folds every event with
   today's definitions, whereas the live fold used the definitions of their moment, so those statistics would come
   out different. ``with_current_definitions`` accepts that (e.g. to recompute after adding a metric).
3. Mark the end offset of every partition of the events topic. Refuse if a partition's earliest offset is not 0:
   retention has deleted records, and a replay would miss them (the events topic is created with
   ``retention.ms=-1`` for this reason: splitstream/eventlog.py ``EVENTS_TOPIC_CONFIGS``).
4. Clear the staging prefix ``{prefix}-rebuild`` and copy into it the definition keys the fold reads.
5. Replay each partition from its first record up to the mark with a group-less consumer, in the consumer's
   batches: decoded by ``decode_records`` and folded by the same ``StatisticsFolder`` as the live consumer, under
   the staging prefix. Per partition the records fold in offset order, as the live consumer folded them; a user's
   records are all on one partition (keyed by user id), so each user's hashes, pending events, daily totals and
   dedup marks come out identical. Undecodable records are counted (``stats:poison``), not sent to the dead-letter
   topic again.
6. Swap the staging derived keys in (``rebuild_state.swap_in``; not atomic across keys: run with consumers stopped).
7. Commit the mark as the consumer group's offsets, so restarted consumers go on right after the replayed records.
   (Were this step lost, they would re-read records already in the rebuilt state, which the dedup marks skip:
   only ``stats:duplicates`` would grow.)

What "identical" means. Everything per user is identical, and so is every integer: counts, users, counters, and
Σy, Σy² of whole-number values. The variant and segment sums of fractional values are sums over users of several
partitions: the fold adds them in double arithmetic, so the order of addition shows in their last digits, and the
live consumer's interleaving of partitions (fetch timing, one process or several) cannot be replayed. With one
partition the order, hence every digit, is the same; with several, such a sum may differ in its last bits (a few
ulps, about 1e-16 relative).

Not reproduced: redeliveries the live consumer skipped (``stats:duplicates`` counts only the topic's own repeats),
and anything that depended on the wall clock of the live fold: a pending list or dedup mark that had expired when
a later record came (a duplicate more than ``dedup_ttl_seconds`` after the first is counted once here, twice live),
and which values filled a segment dimension's first ``max_segment_values`` across partitions. TTLs restart at
the rebuild. The replay knows when each finished experiment ended (``ended_at``), which the live fold did not before
the end: an event dated after the end (a client clock ahead) that arrived before it was counted live, not here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from services.collector.adapters.fold import check_redis_server
from services.collector.aggregator import BatchFolder, batch_folder
from services.collector.config import CollectorSettings
from services.collector.decoding import EventRecord, decode_records
from services.collector.rebuild_state import (
    clear_prefix,
    copy_definitions,
    definitions_changed_since_creation,
    staging_keys,
    swap_in,
)
from splitstream.redis_client import AnyRedis

Progress = Callable[[int, int], None]
"""Called with (records replayed, records up to the mark) after each batch."""


class RebuildRefused(RuntimeError):
    """The rebuild did not start (nothing was written): the message says why and what to do."""


class RebuildFailed(RuntimeError):
    """The rebuild stopped part-way; the live statistics are untouched unless the message says otherwise."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    mark: dict[int, int]
    """Per partition, the end offset replayed up to (and committed for the consumer group)."""
    replayed: dict[int, int]
    """Per partition, records replayed."""
    applied: int
    duplicates: int
    orphan_exposures: int
    overflow: int
    dead_letters: int
    definitions_copied: int
    renamed: dict[str, int]
    """Keys swapped in, per derived family."""
    deleted: int
    """Live derived keys the replay did not recreate, deleted."""
    seconds: float
    definitions_changed: dict[str, list[str]] = field(default_factory=dict)
    """Experiments replayed with definitions changed since creation (only with ``with_current_definitions``)."""

    @property
    def records(self) -> int:
        return sum(self.replayed.values())

    @property
    def keys_swapped(self) -> int:
        return sum(self.renamed.values())


@dataclass
class _Tally:
    replayed: dict[int, int]
    applied: int = 0
    duplicates: int = 0
    orphan_exposures: int = 0
    overflow: int = 0
    dead_letters: int = 0


class Rebuild:
    def __init__(
        self, settings: CollectorSettings, redis: AnyRedis, *, force: bool = False,
        with_current_definitions: bool = False, poll_timeout_ms: int = 500, stall_seconds: float = 60.0,
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._force = force
        self._with_current_definitions = with_current_definitions
        self._poll_timeout_ms = poll_timeout_ms
        self._stall_seconds = stall_seconds
        self._live = settings.redis_keys
        self._staging = staging_keys(self._live)

    async def run(self, progress: Progress | None = None) -> RebuildReport:
        began = time.monotonic()
        if isinstance(self._redis, Redis):  # a cluster client is opened only after the same check
            await check_redis_server(self._redis)  # the replay folds with the same script as the consumer
        await self._refuse_while_consumers_run()
        changed = await definitions_changed_since_creation(self._redis, self._live)
        if changed and not self._with_current_definitions:
            listed = "; ".join(f"{key}: {', '.join(fields)}" for key, fields in changed.items())
            raise RebuildRefused(
                f"experiments changed what the fold reads since they were created ({listed}); the replay would fold "
                "every event with today's definitions and not reproduce the live statistics. Pass "
                "--with-current-definitions to recompute them that way."
            )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers, enable_auto_commit=False,
            client_id="splitstream-rebuild",
        )
        await consumer.start()
        try:
            beginnings, mark = await self._mark(consumer)
            await clear_prefix(self._redis, self._staging)
            copied = await copy_definitions(self._redis, self._live, self._staging)
            tally = await self._replay(consumer, beginnings, mark, progress)
        finally:
            await consumer.stop()
        # A consumer that started during the replay would have folded into the live keys: do not swap over it.
        await self._refuse_while_consumers_run()
        swap = await swap_in(self._redis, self._live, self._staging, copied)
        await self._commit(mark)
        return RebuildReport(
            mark={tp.partition: offset for tp, offset in mark.items()}, replayed=tally.replayed,
            applied=tally.applied, duplicates=tally.duplicates, orphan_exposures=tally.orphan_exposures,
            overflow=tally.overflow, dead_letters=tally.dead_letters, definitions_copied=len(copied),
            renamed=swap.renamed, deleted=swap.deleted, seconds=time.monotonic() - began,
            definitions_changed=changed,
        )

    def _admin(self) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            bootstrap_servers=self._settings.kafka_bootstrap_servers, client_id="splitstream-rebuild"
        )

    async def _refuse_while_consumers_run(self) -> None:
        if self._force:
            return
        admin = self._admin()
        await admin.start()
        try:
            description: dict[str, Any] = (
                await admin.describe_consumer_groups([self._settings.consumer_group])
            )[0].to_object()
        finally:
            await admin.close()
        members = description["groups"][0]["members"]
        if members:
            clients = ", ".join(sorted(f"{m['client_id']}@{m['client_host'].lstrip('/')}" for m in members))
            raise RebuildRefused(
                f"consumer group {self._settings.consumer_group} has {len(members)} active member(s) ({clients}): "
                "stop the aggregation consumers first (a live consumer would keep folding into the live keys while "
                "the topic is replayed). If they are gone and the broker has not noticed yet, wait for their session "
                "to expire or pass --force."
            )

    async def _mark(
        self, consumer: AIOKafkaConsumer
    ) -> tuple[Mapping[TopicPartition, int], Mapping[TopicPartition, int]]:
        topic = self._settings.events_topic
        admin = self._admin()
        await admin.start()
        try:
            described: list[dict[str, Any]] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        numbers = [partition["partition"] for partition in described[0]["partitions"]]
        if described[0]["error_code"] != 0 or not numbers:
            raise RebuildRefused(f"the events topic {topic} does not exist on {self._settings.kafka_bootstrap_servers}")
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
        beginnings: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        truncated = {tp.partition: offset for tp, offset in beginnings.items() if offset > 0}
        if truncated:
            raise RebuildRefused(
                f"the topic {topic} no longer holds its first records (earliest offset per partition: {truncated}): "
                "retention deleted them, so a replay cannot reproduce the statistics"
            )
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return beginnings, ends

    async def _replay(
        self, consumer: AIOKafkaConsumer, beginnings: Mapping[TopicPartition, int], mark: Mapping[TopicPartition, int],
        progress: Progress | None,
    ) -> _Tally:
        folder = batch_folder(self._settings, self._redis, self._staging)
        consumer.assign(list(mark))
        for partition, offset in beginnings.items():
            consumer.seek(partition, offset)
        total = sum(mark[tp] - beginnings[tp] for tp in mark)
        tally = _Tally(replayed={tp.partition: 0 for tp in mark})
        remaining = {tp for tp in mark if mark[tp] > beginnings[tp]}
        last_record_at = time.monotonic()
        if progress is not None:
            progress(0, total)
        while remaining:
            batches = await consumer.getmany(
                *remaining, timeout_ms=self._poll_timeout_ms, max_records=self._settings.consumer_batch_max
            )
            records: list[EventRecord] = []
            for partition, fetched in batches.items():
                before_mark = [record for record in fetched if record.offset < mark[partition]]
                records.extend(before_mark)
                tally.replayed[partition.partition] += len(before_mark)
            if records:
                last_record_at = time.monotonic()
                await self._fold(folder, records, tally)
                if progress is not None:
                    progress(sum(tally.replayed.values()), total)
            for partition in list(remaining):
                # The position passes the mark once its last record is read (also over gaps in the offsets).
                if await consumer.position(partition) >= mark[partition]:
                    remaining.discard(partition)
            if remaining and time.monotonic() - last_record_at > self._stall_seconds:
                raise RebuildFailed(
                    f"no record read for {self._stall_seconds:.0f}s with partitions "
                    f"{sorted(tp.partition for tp in remaining)} short of the mark; the live statistics are untouched"
                )
        return tally

    @staticmethod
    async def _fold(folder: BatchFolder[Any], records: Sequence[EventRecord], tally: _Tally) -> None:
        batch = decode_records(records)
        outcome = await folder.apply(
            batch.events, batch.arrivals_ms, poison=len(batch.dead_letters), sources=batch.sources
        )
        tally.applied += outcome.applied
        tally.duplicates += outcome.duplicates
        tally.orphan_exposures += outcome.orphan_exposures
        tally.overflow += outcome.overflow
        tally.dead_letters += len(batch.dead_letters)

    async def _commit(self, mark: Mapping[TopicPartition, int]) -> None:
        committer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers, group_id=self._settings.consumer_group,
            enable_auto_commit=False, client_id="splitstream-rebuild",
        )
        await committer.start()
        try:
            # A group-less assignment: the commit goes to the group's coordinator without joining the group.
            committer.assign(list(mark))
            await committer.commit(dict(mark))
        except KafkaError as error:
            raise RebuildFailed(
                f"the rebuilt statistics are swapped in, but the consumer group's offsets could not be set to the "
                f"mark {({tp.partition: offset for tp, offset in mark.items()})} ({error!r}); restarted consumers "
                "will re-read records already replayed, which their dedup marks skip (only stats:duplicates grows)"
            ) from error
        finally:
            await committer.stop()
