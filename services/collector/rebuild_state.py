"""The Redis side of a rebuild: which keys the fold derives from events, the staging prefix, and the swap.

Every key under the prefix is one of three kinds (the layout is splitstream/keys.py):

- *derived*: written only by the fold, from the events topic, so a replay recreates them; the swap replaces them:
  ``exp:[scope]:v:*``, ``exp:[scope]:users:*``, ``exp:[scope]:seg:*``, ``exp:[scope]:segvals:*``,
  ``exp:[scope]:pending:*``, ``user:[user]`` (dedup marks and daily totals), ``user:[user]:pending`` (the layout
  before), ``stats:*``;
- *definitions the fold reads*: ``experiments``, ``exp:[key]``, ``event-metrics:*``; copied into the staging prefix
  so the replay reads what the live fold reads, and never written by the rebuild under the live prefix;
- everything else, kept as it is: the audit history, layers, holdouts, sticky assignments, the definitions lock,
  and the analyzer's ``looks`` and ``snapshots`` (recorded over time from the statistics of their day: no replay of
  events can recreate them, so a rebuild keeps them as recorded).

Experiment keys and event names contain no ``:`` nor braces (splitstream/experiment.py ``Key``, ``EventName``), so a
tagged scope (``[scope]``: ``{key}`` or ``{key}~N``, see splitstream/keys.py) is the one segment after ``exp:``;
user ids may contain anything and only ever come last.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.asyncio.cluster import RedisCluster

from splitstream.keys import RedisKeys
from splitstream.redis_client import AnyRedis

STAGING_SUFFIX: Final = "-rebuild"
CHUNK: Final = 1000
"""Keys per pipeline round trip: large enough to be quick, small enough not to hold Redis up."""
SCAN_COUNT: Final = 10_000
"""Keys SCAN visits per call: every scan here walks the whole keyspace, most of it other prefixes' keys."""

DERIVED_FAMILIES: Final[Mapping[str, re.Pattern[str]]] = {
    family: re.compile(pattern, re.DOTALL)
    for family, pattern in {
        "variant statistics": r"^exp:\{[^:]+:v:.",
        "exposed users": r"^exp:\{[^:]+:users:\d+$",
        # A hash per exposed user, before users shared bucket hashes: a rebuild replaces them with the buckets.
        "exposed users, one hash each": r"^exp:\{[^:]+:u:.",
        "segment statistics": r"^exp:\{[^:]+:seg:.",
        "segment values": r"^exp:\{[^:]+:segvals:.",
        "pending events": r"^exp:\{[^:]+:pending:.",
        "pending events, every experiment's at once": r"^user:\{.*\}:pending$",
        "user states": r"^user:\{.*\}$",
        "counters": r"^stats:.",
    }.items()
}

FOLD_READ_FIELDS: Final = ("phase", "variants", "metrics", "segments", "analysis")
"""The definition's fields ``fold.lua`` reads (directly, or through the ``event-metrics`` index that follows the
metrics and the phase); a change to one after creation means the live statistics were folded with other rules."""
ANALYSIS_ONLY_METRIC_FIELDS: Final = frozenset({"role", "higher_is_better", "margin", "cuped"})
"""Metric fields only the analyzer reads; every other metric field is taken to matter to the fold."""


def staging_keys(live: RedisKeys) -> RedisKeys:
    return RedisKeys(f"{live.prefix}{STAGING_SUFFIX}")


def derived_family(key: str, keys: RedisKeys) -> str | None:
    """The family of a key the fold derives from events (see the module docstring), or None for any other key."""
    head = f"{keys.prefix}:"
    if not key.startswith(head):
        return None
    rest = key[len(head):]
    return next((family for family, pattern in DERIVED_FAMILIES.items() if pattern.match(rest)), None)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def scan_prefix(redis: AnyRedis, keys: RedisKeys, pattern: str = "*") -> AsyncIterator[str]:
    async for raw in redis.scan_iter(match=f"{_glob_escape(keys.prefix)}:{pattern}", count=SCAN_COUNT):
        yield _text(raw)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    return (items[start:start + CHUNK] for start in range(0, len(items), CHUNK))


async def delete_all(redis: AnyRedis, names: Iterable[str]) -> int:
    """UNLINK (memory freed off the main thread) ``names`` in chunks; how many existed."""
    removed = 0
    for chunk in _chunks(sorted(set(names))):
        removed += int(await redis.unlink(*chunk))
    return removed


async def clear_prefix(redis: AnyRedis, keys: RedisKeys) -> int:
    return await delete_all(redis, [name async for name in scan_prefix(redis, keys)])


def _across_slots(redis: AnyRedis, source: str, target: str) -> bool:
    """Whether a cluster keeps ``source`` and ``target`` in different slots, which COPY and RENAME cannot span (the
    untagged keys: ``experiments``, ``event-metrics:*``, ``stats:*``)."""
    return isinstance(redis, RedisCluster) and redis.keyslot(source) != redis.keyslot(target)


async def _relocate(redis: AnyRedis, pairs: Sequence[tuple[str, str]], *, keep_source: bool) -> list[bool]:
    """COPY (``keep_source``) or RENAME each (source, target) pair, with DUMP and RESTORE across a cluster's slots;
    whether each source existed."""
    done: dict[int, bool] = {}
    within = [(at, pair) for at, pair in enumerate(pairs) if not _across_slots(redis, *pair)]
    for start in range(0, len(within), CHUNK):
        chunk = within[start:start + CHUNK]
        async with redis.pipeline(transaction=False) as pipe:
            for _, (source, target) in chunk:
                # As raw commands: redis-py's cluster pipeline blocks its rename and copy methods, though both keys
                # are in one slot here.
                if keep_source:
                    pipe.execute_command("COPY", source, target, "REPLACE")
                else:
                    pipe.execute_command("RENAME", source, target)
            results = await pipe.execute()
        for (at, _), result in zip(chunk, results, strict=True):
            done[at] = bool(result)
    for at, (source, target) in enumerate(pairs):
        if at in done:
            continue
        value, ttl_ms = await redis.dump(source), await redis.pttl(source)
        done[at] = value is not None
        if value is not None:
            await redis.restore(target, max(int(ttl_ms), 0), value, replace=True)
            if not keep_source:
                await redis.unlink(source)
    return [done[at] for at in range(len(pairs))]


async def copy_definitions(redis: AnyRedis, live: RedisKeys, staging: RedisKeys) -> set[str]:
    """COPY the definition keys the fold reads from ``live`` to ``staging``; the staging names written."""
    experiments = sorted(_text(raw) for raw in await redis.smembers(live.experiments))
    indexes = [name async for name in scan_prefix(redis, live, "event-metrics:*")]
    sources = [live.experiments, *(live.experiment(key) for key in experiments), *indexes]
    pairs = [(source, staging.prefix + source[len(live.prefix):]) for source in sources]
    copied = await _relocate(redis, pairs, keep_source=True)
    return {target for (_, target), done in zip(pairs, copied, strict=True) if done}


@dataclass(frozen=True, slots=True)
class SwapOutcome:
    renamed: dict[str, int]
    """Staging keys renamed to their live names, per derived family."""
    deleted: int
    """Live derived keys the replay did not recreate, deleted."""


class UnknownStagingKeys(RuntimeError):
    """The replay wrote keys of a family the rebuild does not know: swapping would leave their live copies stale."""


async def swap_in(redis: AnyRedis, live: RedisKeys, staging: RedisKeys, copied: set[str]) -> SwapOutcome:
    """Replace the live derived keys by the staging ones, then drop the staging definition copies.

    Each staging key is RENAMEd over its live name (atomic per key: a reader sees the old or the new value, never
    none), then the live derived keys the replay did not recreate are deleted. Across keys it is not atomic: a
    reader during the swap may see some keys rebuilt and others not yet, which is why it runs with the consumers
    stopped and why a reading taken during it should be taken again. If it is interrupted, running the rebuild
    again restores a consistent state (the staging prefix is rebuilt from scratch, and the consumer group's
    offsets are only moved after a complete swap).
    """
    fold_output: list[tuple[str, str]] = []
    unknown: list[str] = []
    async for name in scan_prefix(redis, staging):
        if name in copied:
            continue
        family = derived_family(name, staging)
        if family is None:
            unknown.append(name)
        else:
            fold_output.append((name, family))
    if unknown:
        raise UnknownStagingKeys(
            f"the replay wrote {len(unknown)} key(s) outside the derived families the rebuild knows, e.g. "
            f"{sorted(unknown)[:3]}; nothing was swapped (update DERIVED_FAMILIES in {__name__})"
        )
    live_derived = {name async for name in scan_prefix(redis, live) if derived_family(name, live) is not None}
    renamed: dict[str, int] = {}
    pairs = [(name, live.prefix + name[len(staging.prefix):]) for name, _ in fold_output]
    await _relocate(redis, pairs, keep_source=False)
    recreated = {target for _, target in pairs}
    for _, family in fold_output:
        renamed[family] = renamed.get(family, 0) + 1
    deleted = await delete_all(redis, live_derived - recreated)
    await delete_all(redis, copied)
    return SwapOutcome(renamed=renamed, deleted=deleted)


def _fold_view(field: str, value: Any) -> Any:
    """What the fold reads of one definition field's value (as stored in an audit entry: JSON)."""
    if field == "variants" and isinstance(value, list):
        return [variant.get("key") if isinstance(variant, dict) else variant for variant in value]
    if field == "metrics" and isinstance(value, list):
        return [
            {k: v for k, v in metric.items() if k not in ANALYSIS_ONLY_METRIC_FIELDS} if isinstance(metric, dict)
            else metric
            for metric in value
        ]
    if field == "analysis" and isinstance(value, dict):
        return value.get("cuped_lookback_days")
    return value


def fold_relevant_changes(history: Sequence[bytes | str]) -> list[str]:
    """The fields the fold reads that an experiment's audit entries (services/assignment/audit.py, JSON with
    ``action`` and ``changes``: field -> ``before``/``after``) changed after its creation, sorted."""
    changed: set[str] = set()
    for raw in history:
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            changed.add("(unreadable audit entry)")
            continue
        if not isinstance(entry, dict) or entry.get("action") == "create":
            continue
        changes = entry.get("changes")
        for field in FOLD_READ_FIELDS:
            change = changes.get(field) if isinstance(changes, dict) else None
            if isinstance(change, dict) and _fold_view(field, change.get("before")) != _fold_view(
                field, change.get("after")
            ):
                changed.add(field)
    return sorted(changed)


async def definitions_changed_since_creation(redis: AnyRedis, keys: RedisKeys) -> dict[str, list[str]]:
    """Experiment -> the fold-relevant fields changed since it was created. The replay folds every event with
    today's definitions, whereas the live fold used the definition of its moment: for these experiments (a new
    phase, a metric added or re-pointed, segments changed...) the rebuilt statistics would differ from the live
    ones."""
    experiments = sorted(_text(raw) for raw in await redis.smembers(keys.experiments))
    found: dict[str, list[str]] = {}
    for key in experiments:
        fields = fold_relevant_changes(await redis.lrange(keys.history(key), 0, -1))
        if fields:
            found[key] = fields
    return found
