"""Where shared state lives: the Redis key layout and the Kafka topic, written by one service, read by another.

Redis (one logical database, every key under ``prefix``):
Statistics are kept per phase of an experiment: their keys name the experiment's *stats scope*,
``stats_scope(key, phase)``: the key itself in phase 1, ``{key}~{phase}`` after (``~`` never occurs in a key), so
a new phase starts its analysis from zero while the earlier phases' statistics stay readable.

Hash tags: every key of one experiment (all phases) carries the experiment key between braces, and every key of
one user carries the user id between braces, so Redis Cluster puts each experiment's keys in one slot and each
user's keys in one slot. Below, ``[key]`` is the tagged key (``{checkout}``), ``[scope]`` the tagged scope
(``{checkout}`` or ``{checkout}~2``) and ``[user]`` the tagged user id (``{u42}``).

- ``{p}:experiments``                 set of experiment keys
- ``{p}:exp:[key]``                   the experiment definition as JSON
- ``{p}:event-metrics:{event}``       set of ``scope|metric|role`` entries fed by that event name (the scope of
                                      the experiment's current phase: events feed only the current phase); the
                                      role is the metric's type, or ``denominator-count|sum`` for a ratio's
                                      denominator event
- ``{p}:exp:[scope]:v:{variant}``     hash of the variant's sufficient statistics: ``users``,
                                      ``{metric}:sum``, ``{metric}:sumsq`` (Σy, Σy², or a ratio's Σm, Σm²);
                                      a ratio's ``{metric}:dsum``, ``{metric}:dsumsq``, ``{metric}:md`` (Σd, Σd²,
                                      Σm·d); a binomial or mean metric's CUPED covariate ``{metric}:xsum``,
                                      ``{metric}:xsumsq``, ``{metric}:xy`` (Σx, Σx², Σx·y)
- ``{p}:exp:[scope]:users:{bucket}``  hash of the exposed users of one of ``USER_BUCKETS`` buckets
                                      (``user_place``): field 8 bytes of the user id's hash, value the user's
                                      record (``user_record``): ``v`` (variant), ``t`` (first exposure, epoch ms),
                                      ``m:{metric}`` (the user's running total, a ratio's numerator),
                                      ``d:{metric}`` (a ratio's denominator), ``x:{metric}`` (the covariate,
                                      when not 0), ``s:{dimension}`` (the user's segment values); a field per
                                      user costs far less than a key per user
- ``{p}:exp:[scope]:looks``           list of the group-sequential looks the analyzer recorded, oldest first: one
                                      JSON record per look (services/analyzer/looks.py), appended only when the
                                      list holds exactly the looks before it, so no look is recorded twice
- ``{p}:exp:[scope]:segvals:{dim}``   set of the values of one segment dimension (at most ``max_segment_values``,
                                      then ``(other)``; ``(none)`` for users without the attribute)
- ``{p}:exp:[scope]:seg:{dim}:{value}:v:{variant}``  the variant's statistics among that segment's users
- ``{p}:exp:[scope]:snapshots``       list of the analyzer's snapshots of every variant's statistics, oldest first
                                      (JSON: ``at`` and each variant's hash), for cumulative charts
- ``{p}:user:[user]``                hash of the user's state shared by every experiment:
                                      - dedup marks: ``dedup_mark(event id)`` (8 bytes) → day of arrival (days
                                        since the epoch) modulo 128, so a redelivered or resent event is not
                                        counted twice; each mark is kept at least ``dedup_ttl`` seconds;
                                      - daily totals of events feeding binomial or mean metrics (CUPED):
                                        ``daily_totals_field(event, day)`` (6 bytes) = Σ values that day (1 for
                                        an event without one; ``day`` = days since 1970-01-01 UTC), kept
                                        ``MAX_CUPED_LOOKBACK_DAYS``; states written before held an event's days
                                        in one field, ``{day}:{Σ values},{count}`` entries joined by ``;``
- ``{p}:exp:[scope]:pending:{user}`` the user's recent events that feed the scope's metrics and came before the
                                      user's exposure there, replayed (and dropped) when the exposure arrives
- ``{p}:user:[user]:pending``        where such events waited for every experiment before they moved to the
                                      scope's slot (``legacy_pending``): read still, never written
- ``{p}:stats:{counter}``             the consumer's counters: applied, duplicates, orphan_exposures, poison, ...
- ``{p}:exp:[key]:history``           list of the experiment's audit entries (JSON), one per version, oldest first
- ``{p}:layers`` / ``{p}:holdouts``   hashes of layer / holdout definitions (JSON) by key
- ``{p}:sticky:{unit}:{id}``          hash of one unit's sticky assignments: ``{experiment}#{phase}`` → variant
- ``{p}:definitions-lock``            held while a definition changes, so versions and layer buckets never race
- ``{p}:definitions-changed``         pub/sub channel: a definition changed (the message is the key)
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b, sha1

DEFAULT_EVENTS_TOPIC = "splitstream.events"
METRIC_INDEX_SEPARATOR = "|"
DEDUP_MARK_BYTES = 8
DAILY_TOTALS_NAME_BYTES = 4
DAILY_TOTALS_FIELD_BYTES = 6
USER_BUCKETS = 4096
USER_RECORD_SEPARATOR = "\x1f"


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = "ss"

    @property
    def experiments(self) -> str:
        return f"{self.prefix}:experiments"

    def experiment(self, key: str) -> str:
        return f"{self.prefix}:exp:{{{key}}}"

    def event_metrics(self, event: str) -> str:
        return f"{self.prefix}:event-metrics:{event}"

    def variant_stats(self, scope: str, variant: str) -> str:
        return f"{self._scoped(scope)}:v:{variant}"

    def exposed_users(self, scope: str, bucket: int | str) -> str:
        """One bucket of the scope's exposed users (``user_place``; ``"*"`` for a SCAN pattern)."""
        return f"{self._scoped(scope)}:users:{bucket}"

    def looks(self, scope: str) -> str:
        return f"{self._scoped(scope)}:looks"

    def segment_values(self, scope: str, dimension: str) -> str:
        return f"{self._scoped(scope)}:segvals:{dimension}"

    def segment_stats(self, scope: str, dimension: str, value: str, variant: str) -> str:
        return f"{self._scoped(scope)}:seg:{dimension}:{value}:v:{variant}"

    def snapshots(self, scope: str) -> str:
        return f"{self._scoped(scope)}:snapshots"

    def _scoped(self, scope: str) -> str:
        """``{p}:exp:`` and the tagged scope: the experiment key in braces, then ``~{phase}`` after phase 1."""
        key, separator, phase = scope.partition(PHASE_SEPARATOR)
        return f"{self.prefix}:exp:{{{key}}}{separator}{phase}"

    def user_state(self, user_id: str) -> str:
        """The user's dedup marks and daily totals (one hash)."""
        return f"{self.prefix}:user:{{{user_id}}}"

    def pending(self, scope: str, user_id: str) -> str:
        """The user's events waiting in ``scope`` for the user's exposure there."""
        return f"{self._scoped(scope)}:pending:{user_id}"

    def legacy_pending(self, user_id: str) -> str:
        """The user's waiting events as fold.lua kept them for every experiment at once, before ``pending``."""
        return f"{self.user_state(user_id)}:pending"

    def stats(self, counter: str) -> str:
        return f"{self.prefix}:stats:{counter}"

    def history(self, experiment: str) -> str:
        return f"{self.experiment(experiment)}:history"

    @property
    def layers(self) -> str:
        return f"{self.prefix}:layers"

    @property
    def holdouts(self) -> str:
        return f"{self.prefix}:holdouts"

    def sticky(self, unit: str, unit_id: str) -> str:
        return f"{self.prefix}:sticky:{unit}:{unit_id}"

    @property
    def definitions_lock(self) -> str:
        return f"{self.prefix}:definitions-lock"

    @property
    def definitions_changed(self) -> str:
        return f"{self.prefix}:definitions-changed"


PHASE_SEPARATOR = "~"


def stats_scope(experiment: str, phase: int) -> str:
    """Where one phase's statistics live (see the module docstring)."""
    return experiment if phase == 1 else f"{experiment}{PHASE_SEPARATOR}{phase}"


def metric_index_entry(experiment: str, metric: str, role: str) -> str:
    """``role``: how the event moves the metric (``Metric.feeds``): its type, or a ratio's denominator part."""
    return METRIC_INDEX_SEPARATOR.join((experiment, metric, role))


def dedup_mark(event_id: str) -> bytes:
    """The field that marks an applied event in its user's state: 64 bits of BLAKE2b of the event id. A user keeps
    a few thousand marks at most, so two ids share a mark with odds near 2^-64 per pair."""
    return blake2b(event_id.encode(), digest_size=DEDUP_MARK_BYTES).digest()


def daily_totals_field(event: str, day: int) -> bytes:
    """The field of an event name's total on one day (days since the epoch) in each user's state: the first 32 bits
    of the name's SHA-1 (fold.lua takes them from ``redis.sha1hex``) and the day in 16 bits, big-endian: 6 bytes,
    however long the name. Two names that share their 32 bits mix their totals in the users who have both: only
    their CUPED covariates move, which are pre-exposure numbers, so the estimates stay unbiased and merely lose some
    variance reduction."""
    name = sha1(event.encode()).digest()[:DAILY_TOTALS_NAME_BYTES]
    return name + day.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class UserPlace:
    """Where an experiment keeps a user's record: which of its ``USER_BUCKETS`` hashes, and the field there."""

    bucket: int
    field: bytes


def user_place(user_id: str) -> UserPlace:
    """From the SHA-1 of the user id (``user_place_bytes``): the bucket is its first 12 bits,
    the field its bytes 3 to 10, so a user costs 8 bytes of field however long the id. Two users of a bucket share
    a field with odds of 2^-64 per pair. 4,096 buckets keep each under Redis's listpack limit of 128 fields
    (deploy/redis/redis.conf raises it to 256) up to about half a million (a million) users per experiment."""
    place = user_place_bytes(user_id)
    return UserPlace(int.from_bytes(place[:2]) >> 4, place[2:])


def user_place_bytes(user_id: str) -> bytes:
    """The first 10 bytes of the user id's SHA-1: the bucket and the field of ``user_place``, as fold.lua receives
    them with each event."""
    return sha1(user_id.encode()).digest()[:10]


def user_record(raw: bytes | None) -> dict[str, str]:
    """A user's record as fold.lua writes it: ``field=value`` entries joined by ``USER_RECORD_SEPARATOR``."""
    if raw is None:
        return {}
    fields = (entry.partition("=") for entry in raw.decode().split(USER_RECORD_SEPARATOR) if entry)
    return {field: value for field, _, value in fields}


def sum_field(metric: str) -> str:
    return f"{metric}:sum"


def sum_squares_field(metric: str) -> str:
    return f"{metric}:sumsq"


def moment_field(metric: str, moment: str) -> str:
    """The other fields of a variant's hash: ``dsum``, ``dsumsq``, ``md`` (ratio), ``xsum``, ``xsumsq``, ``xy``
    (CUPED)."""
    return f"{metric}:{moment}"
