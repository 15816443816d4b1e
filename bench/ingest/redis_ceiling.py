"""The aggregation's ceiling: ``redis-benchmark`` against the same Redis, in a database of its own.

Three figures: plain ``SET`` and ``HINCRBYFLOAT`` ops/s (4 clients, pipelines of 16), and the consumer's own fold
script (``EVALSHA`` of ``fold.lua``) on batches as large as a consumer's by default, from one client, as one consumer
calls it: the gap to the consumer's rate is its own side (fetching from Kafka, decoding, building the call). The
batch is ``FOLD_USERS`` users × (an exposure and one event per metric); ``__rand_int__`` gives every event a fresh id
per call, so after the first call the exposures are repeats (first exposure wins) and the events fold into the users'
running totals.
Every key it writes starts with a per-run prefix and is deleted afterwards; the marks expire within minutes anyway.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from redis.asyncio import Redis

from bench.debian import debian_binary
from bench.ingest.aggregation import MEAN_VALUE, METRICS, VARIANTS, experiment_spec, metric_event
from bench.ingest.stack import delete_matching
from services.collector.adapters.fold import FOLD_SCRIPT, script_fields, script_header
from services.collector.config import CollectorSettings
from splitstream.events import Exposure, TrackEvent
from splitstream.experiment import Experiment, ExperimentStatus
from splitstream.keys import RedisKeys, user_place_bytes
from splitstream.registry import ExperimentRegistry

CEILING_DATABASE = 15
FOLD_USERS = CollectorSettings.model_fields["consumer_batch_max"].default // (METRICS + 1)
"""A call as large as a consumer's by default."""
FOLD_CALLS = 300
SHORT_TTL_SECONDS = 300
PENDING_MAX_EVENTS = 200
RANDOM_SPACE = 10**11


@dataclass(frozen=True, slots=True)
class RedisCeilings:
    set_ops: float
    hincrbyfloat_ops: float
    fold_calls: float
    fold_batch: int

    @property
    def fold_events(self) -> float:
        return self.fold_calls * self.fold_batch


def redis_benchmark_binary() -> str:
    return debian_binary("redis-benchmark", "redis-tools")


async def _requests_per_second(
    binary: str, redis_url: str, options: list[str], command: list[str] | list[str | bytes]
) -> float:
    address = urlsplit(redis_url)
    argv = [binary, "-h", address.hostname or "127.0.0.1", "-p", str(address.port or 6379),
            "--dbnum", str(CEILING_DATABASE), "--csv", *options, *command]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"redis-benchmark {command[0]!r} failed: {err.decode(errors='replace')[-500:]}")
    return _rps(out.decode(errors="replace"))


def _rps(csv_output: str) -> float:
    """The ``rps`` of redis-benchmark's last CSV row. Its first column echoes the command, whose binary arguments may
    hold quotes, commas or line breaks; the numeric columns after it hold none, so the row is read from its end."""
    header, *_ = csv_output.splitlines()
    columns = next(csv.reader([header]))
    row = csv_output.rstrip().rsplit("\n", 1)[-1].rsplit('","', len(columns) - 1)
    return float(row[columns.index("rps")].strip('"'))


def _templated_fields(event: Exposure | TrackEvent) -> list[str | bytes]:
    """The event's script fields with its id itself as the dedup mark (8 bytes of a hash in the consumer), so that
    redis-benchmark's ``__rand_int__`` in it gives every call fresh marks."""
    fields: list[str | bytes] = [*script_fields(event)]
    fields[1] = event.event_id
    return fields


def _command_line_users(prefix: str) -> Iterator[str]:
    """User ids whose place (a binary ARGV field) holds no NUL byte, which a command line cannot carry."""
    for index in itertools.count():
        user = f"{prefix}-u{index}"
        if 0 not in user_place_bytes(user):
            yield user


def _fold_arguments(prefix: str, experiment: str, run: str) -> list[str | bytes]:
    now = datetime.now(UTC)
    fields: list[str | bytes] = [*script_header(
        prefix, dedup_ttl_seconds=SHORT_TTL_SECONDS, pending_ttl_seconds=SHORT_TTL_SECONDS,
        pending_max_events=PENDING_MAX_EVENTS, lateness_seconds=SHORT_TTL_SECONDS, poison=0,
    )]
    for index, user in zip(range(FOLD_USERS), _command_line_users(prefix), strict=False):
        exposure = Exposure(type="exposure", event_id="x-__rand_int__", user_id=user, timestamp=now,
                            experiment=experiment, variant=VARIANTS[index % len(VARIANTS)])
        fields.extend(_templated_fields(exposure))
        for metric in range(METRICS):
            event = TrackEvent(type="event", event_id=f"e{metric}-__rand_int__", user_id=user, timestamp=now,
                               name=metric_event(run, metric), value=MEAN_VALUE if metric % 2 else None)
            fields.extend(_templated_fields(event))
    return fields


async def measure_redis_ceilings(redis_url: str, run: str) -> RedisCeilings:
    binary = redis_benchmark_binary()
    prefix = f"bench-ceiling-{run}"
    # The database in the URL would win over a ``db=`` argument, so the URL itself names the ceiling's database.
    redis = Redis.from_url(urlsplit(redis_url)._replace(path=f"/{CEILING_DATABASE}").geturl())
    try:
        experiment_key = "fold-ceiling"
        spec = experiment_spec(experiment_key, run)
        experiment = Experiment.model_validate({**spec, "status": ExperimentStatus.RUNNING, "salt": experiment_key,
                                                "created_at": datetime.now(UTC)})
        await ExperimentRegistry(redis, RedisKeys(prefix)).create(experiment)
        sha = await redis.script_load(FOLD_SCRIPT)
        pipelined = ["-c", "4", "-P", "16", "-n", "200000"]
        set_ops = await _requests_per_second(
            binary, redis_url, [*pipelined, "-r", "1000000"], ["SET", f"{prefix}:set:__rand_int__", "1"]
        )
        hincrbyfloat_ops = await _requests_per_second(
            binary, redis_url, [*pipelined, "-r", "1000"], ["HINCRBYFLOAT", f"{prefix}:hash", "f__rand_int__", "1.5"]
        )
        fold_calls = await _requests_per_second(
            binary, redis_url, ["-c", "1", "-n", str(FOLD_CALLS), "-r", str(RANDOM_SPACE)],
            ["EVALSHA", sha, "0", *_fold_arguments(prefix, experiment_key, run)],
        )
        return RedisCeilings(set_ops, hincrbyfloat_ops, fold_calls, FOLD_USERS * (METRICS + 1))
    finally:
        await delete_matching(redis, f"{prefix}*")
        await redis.aclose()

