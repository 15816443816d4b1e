"""Applies a batch of decoded events to Redis with one call of ``fold.lua``, so a batch lands entirely or not at all.

The script marks every event it applies (in the user's state ``{p}:user:{<user>}``, kept ``dedup_ttl`` seconds)
and skips marked ones, so applying the same batch twice, as a consumer restarted between apply and offset commit
does, changes nothing the second time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Final, Literal, TypedDict

import hiredis
import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError

from services.collector.decoding import arrival_ms
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import MAX_CUPED_LOOKBACK_DAYS
from splitstream.keys import RedisKeys, dedup_mark, stats_scope, user_place_bytes
from splitstream.redis_client import AnyRedis, open_redis

FOLD_PARTS: Final = ("prelude", "definitions", "user_state", "targets", "statistics", "covariates", "apply")
"""The script's parts in ``fold_lua/``, in the order they are joined: each uses only what the ones before define."""
FOLD_SCRIPT: Final = "\n".join(
    files("services.collector.adapters").joinpath("fold_lua", f"{part}.lua").read_text(encoding="utf-8")
    for part in FOLD_PARTS
)
"""``fold.lua``: one script (Redis runs a batch as one atomic call), kept in parts to stay readable."""

STATS_COUNTERS: Final = ("applied", "duplicates", "orphan_exposures", "overflow", "poison")
"""Counters kept at ``{p}:stats:{counter}``: events applied (first deliveries, orphans included), redelivered
events skipped, exposures to unknown experiments or variants or dated after the experiment ended, metric updates
skipped because a float sum would overflow, and records that could not be decoded."""


MIN_REDIS_VERSION: Final = (7, 0)
"""The fold keeps user states alive with ``EXPIRE … GT`` (Redis 7.0 and later) instead of reading their TTLs."""


class UnsupportedRedis(RuntimeError):
    """The Redis server is older than the fold needs, or runs in cluster mode where only a standalone one serves."""


def version_tuple(text: str) -> tuple[int, ...]:
    """``"7.0.15"`` → ``(7, 0, 15)``; whatever follows the leading numbers is ignored."""
    numbers = []
    for part in text.split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def runs_cluster(info: Mapping[str, Any]) -> bool:
    return str(info.get("cluster_enabled", "0")) == "1"


def server_refusal(info: Mapping[str, Any], *, cluster_ok: bool = False) -> str | None:
    """Why the fold cannot run on the server whose INFO (``server`` and ``cluster`` sections) this is, or None.

    One fold call touches the keys of a batch's users and of every experiment their events feed, declared in no
    KEYS, so it needs all of them on one server: a cluster node would refuse the keys of other slots in mid-script.
    The consumer folds on a cluster in steps instead (``cluster_ok``); a rebuild does not yet."""
    found = str(info.get("redis_version", ""))
    if version_tuple(found) < MIN_REDIS_VERSION:
        wanted = ".".join(map(str, MIN_REDIS_VERSION))
        return f"the fold needs Redis {wanted} or newer; the server at hand is {found or 'unknown'}"
    if runs_cluster(info) and not cluster_ok:
        return "this needs a standalone Redis (or a single shard); the server at hand runs in cluster mode"
    return None


async def server_info(redis: Redis) -> dict[str, Any]:
    return {**await redis.info("server"), **await redis.info("cluster")}


async def check_redis_server(redis: Redis) -> None:
    """Raise :class:`UnsupportedRedis`, saying why, when the one-call fold cannot run on this server: a process that
    started anyway would fail every fold call."""
    refusal = server_refusal(await server_info(redis))
    if refusal is not None:
        raise UnsupportedRedis(refusal)


async def open_fold_redis(url: str) -> AnyRedis:
    """A client of the Redis at ``url`` for the consumer: a cluster client when the server is a cluster node.
    Raises :class:`UnsupportedRedis` when the server is too old, RedisError or OSError when it does not answer."""
    probe = open_redis(url)
    try:
        info = await server_info(probe)
    finally:
        await probe.aclose()
    refusal = server_refusal(info, cluster_ok=True)
    if refusal is not None:
        raise UnsupportedRedis(refusal)
    return RedisCluster.from_url(url) if runs_cluster(info) else open_redis(url)


async def read_stats(redis: AnyRedis, keys: RedisKeys) -> dict[str, int]:
    # One GET each: the counters lie in different slots of a cluster, which one MGET cannot span.
    async with redis.pipeline(transaction=False) as pipe:
        for counter in STATS_COUNTERS:
            pipe.get(keys.stats(counter))
        values = await pipe.execute()
    return {counter: int(value or 0) for counter, value in zip(STATS_COUNTERS, values, strict=True)}


@dataclass(frozen=True, slots=True)
class FoldOutcome:
    applied: int
    duplicates: int
    orphan_exposures: int
    overflow: int
    poison: int


DEFAULT_MAX_SEGMENT_VALUES: Final = 100


class FoldLimits(TypedDict):
    """The consumer's settings a fold call carries (CollectorSettings)."""

    dedup_ttl_seconds: int
    pending_ttl_seconds: int
    pending_max_events: int
    lateness_seconds: int
    max_segment_values: int


FoldMode = Literal["all", "decide", "experiments", "record"]
"""How a call folds (fold_lua/apply.lua): a whole batch at once, or one of the three steps of a batch on a cluster."""


def script_header(
    prefix: str, *, dedup_ttl_seconds: int, pending_ttl_seconds: int, pending_max_events: int, lateness_seconds: int,
    poison: int, max_segment_values: int = DEFAULT_MAX_SEGMENT_VALUES, mode: FoldMode = "all", experiment: str = "",
    index: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The ARGV fields ``fold.lua`` reads before the events; the lateness bound travels in milliseconds, the unit of
    the arrival times it is compared with. Daily totals are kept as long as the longest CUPED lookback allowed.
    ``experiment``: the one a call in mode "experiments" folds; ``index``: the metric index entries of the batch's
    event names, when the script must not read them itself (they are in other slots)."""
    given = [] if index is None else [part for name, entries in index.items() for part in (name, "\n".join(entries))]
    return [
        prefix, str(dedup_ttl_seconds), str(pending_ttl_seconds), str(pending_max_events),
        str(lateness_seconds * 1000), str(poison), str(max_segment_values), str(MAX_CUPED_LOOKBACK_DAYS), mode,
        experiment, str(-1 if index is None else len(index)), *given,
    ]


def script_fields(
    event: Exposure | TrackEvent, arrived_ms: int | None = None, place: bytes | None = None
) -> tuple[str, bytes, str, bytes, str, str, str, str, str]:
    """The nine ARGV fields ``fold.lua`` reads per event, ``arrived_ms`` its arrival time (epoch milliseconds;
    by default its ``received_at``, else now); the event id travels as its dedup mark, the user's place
    (``user_place_bytes``, given when known) next to the user id; ``repr`` keeps a float's every digit."""
    if arrived_ms is None:
        arrived_ms = arrival_ms(event, -1, time.time_ns() // 1_000_000)
    attributes = ""
    if isinstance(event, Exposure):
        second, third = stats_scope(event.experiment, event.phase), event.variant
        if event.attributes:
            attributes = orjson.dumps(event.attributes).decode()
    else:
        second, third = event.name, "" if event.value is None else repr(event.value)
    if place is None:
        place = user_place_bytes(event.user_id)
    return (
        event.type, dedup_mark(event.event_id), event.user_id, place, second, third, str(event.timestamp_ms),
        str(arrived_ms), attributes,
    )


@dataclass(frozen=True, slots=True)
class FoldCall:
    """The arguments of one fold call, built apart from sending it, so that the consumer builds the next call while
    Redis runs the current one; ``command`` is the whole ``EVALSHA`` in the Redis protocol, packed by hiredis in one
    step (redis-py's own packing encodes each argument in Python: thrice the time, for thousands of arguments)."""

    args: list[str | bytes]
    poison: int
    command: bytes


class PendingFold:
    """A fold call written to Redis whose answer is still to be read: the consumer decodes its next batch meanwhile
    (Redis runs the script while Python works). Read it with :meth:`outcome`, exactly once."""

    def __init__(self, folder: StatisticsFolder, connection: AbstractConnection, call: FoldCall) -> None:
        self._folder = folder
        self._connection = connection
        self._args = call.args
        self._poison = call.poison

    async def outcome(self) -> FoldOutcome:
        pool = self._folder.redis.connection_pool
        try:
            reply = await self._connection.read_response()
        except NoScriptError:
            # Redis does not have the script (first use, a restart, SCRIPT FLUSH) and ran nothing: run it through
            # redis-py, which loads it and calls again.
            await pool.release(self._connection)
            return _outcome(await self._folder.script(keys=[], args=self._args), self._poison)
        except ResponseError:  # the connection itself is sound
            await pool.release(self._connection)
            raise
        except BaseException:
            await self._connection.disconnect()
            await pool.release(self._connection)
            raise
        await pool.release(self._connection)
        return _outcome(reply, self._poison)


def _outcome(reply: Any, poison: int) -> FoldOutcome:
    applied, duplicates, orphans, overflow = reply
    return FoldOutcome(int(applied), int(duplicates), int(orphans), int(overflow), poison)


class StatisticsFolder:
    def __init__(
        self, redis: Redis, keys: RedisKeys, *, dedup_ttl_seconds: int, pending_ttl_seconds: int,
        pending_max_events: int, lateness_seconds: int, max_segment_values: int = DEFAULT_MAX_SEGMENT_VALUES,
    ) -> None:
        self.redis = redis
        self.script = redis.register_script(FOLD_SCRIPT)
        self._prefix = keys.prefix
        self._limits: FoldLimits = {
            "dedup_ttl_seconds": dedup_ttl_seconds, "pending_ttl_seconds": pending_ttl_seconds,
            "pending_max_events": pending_max_events, "lateness_seconds": lateness_seconds,
            "max_segment_values": max_segment_values,
        }

    async def apply(
        self, events: Sequence[Exposure | TrackEvent], arrivals_ms: Sequence[int], *, poison: int = 0,
        sources: Sequence[object] | None = None,
    ) -> FoldOutcome:
        """Fold ``events`` (which arrived at ``arrivals_ms``, index for index) in order and count ``poison``
        undecodable records, in one atomic script call; their Kafka records (``sources``) are not needed: an atomic
        call never lands in part."""
        return await (await self.send(self.call(events, arrivals_ms, poison=poison))).outcome()

    def call(
        self, events: Sequence[Exposure | TrackEvent], arrivals_ms: Sequence[int], *, poison: int = 0,
        sources: Sequence[object] | None = None,
    ) -> FoldCall:
        """The call of :meth:`apply`, not yet sent."""
        args: list[str | bytes] = [*script_header(self._prefix, **self._limits, poison=poison)]
        places: dict[str, bytes] = {}  # a user's events are often several to a batch
        for event, arrived_ms in zip(events, arrivals_ms, strict=True):
            place = places.get(event.user_id)
            if place is None:
                place = places[event.user_id] = user_place_bytes(event.user_id)
            args.extend(script_fields(event, arrived_ms, place))
        # hiredis's stub types its argument as a tuple of one item; it takes any number.
        command = hiredis.pack_command(("EVALSHA", self.script.sha, 0, *args))  # type: ignore[arg-type]
        return FoldCall(args, poison, command)

    async def send(self, call: FoldCall) -> PendingFold:
        """Write ``call`` to Redis now, on a connection of its own, and return without its answer."""
        pool = self.redis.connection_pool
        # redis-py leaves get_connection untyped (its deprecation decorator); it is the public way to hold one.
        connection: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(call.command)
        except BaseException:
            await connection.disconnect()
            await pool.release(connection)
            raise
        return PendingFold(self, connection, call)
