"""Where shared state lives: the Redis key layout and the Kafka topic, written by one service, read by another.

Redis (one logical database, every key under ``prefix``):
Statistics are kept per phase of an experiment: their keys name the experiment's *stats scope*,
``stats_scope(key, phase)``: the key itself in phase 1, ``{key}~{phase}`` after (``~`` never occurs in a key), so
a new phase starts its analysis from zero while the earlier phases' statistics stay readable.

- ``{p}:experiments``                 set of experiment keys
- ``{p}:exp:{key}``                   the experiment definition as JSON
- ``{p}:event-metrics:{event}``       set of ``scope|metric|type`` entries fed by that event name (the scope of
                                      the experiment's current phase: events feed only the current phase)
- ``{p}:exp:{scope}:v:{variant}``     hash of the variant's sufficient statistics: ``users``,
                                      ``{metric}:sum``, ``{metric}:sumsq``
- ``{p}:exp:{scope}:u:{user}``        hash of one exposed user: ``variant``, ``ts`` (first exposure, epoch ms),
                                      ``m:{metric}`` (the user's running total)
- ``{p}:exp:{scope}:looks``           list of the group-sequential looks the analyzer recorded, oldest first: one
                                      JSON record per look (services/analyzer/looks.py), appended only when the
                                      list holds exactly the looks before it, so no look is recorded twice
- ``{p}:exp:{scope}:segvals:{dim}``   set of the values of one segment dimension (at most ``max_segment_values``,
                                      then ``(other)``; ``(none)`` for users without the attribute)
- ``{p}:exp:{scope}:seg:{dim}:{value}:v:{variant}``  the variant's statistics among that segment's users
- ``{p}:exp:{scope}:snapshots``       list of the analyzer's snapshots of every variant's statistics, oldest first
                                      (JSON: ``at`` and each variant's hash), for cumulative charts
- ``{p}:user:{user}:pending``         recent events of the user, replayed when a later exposure arrives
- ``{p}:seen:{event_id}``             marks an event as applied, so a redelivered event is not counted twice
- ``{p}:stats:{counter}``             the consumer's counters: applied, duplicates, orphan_exposures, poison, ...
- ``{p}:exp:{key}:history``           list of the experiment's audit entries (JSON), one per version, oldest first
- ``{p}:layers`` / ``{p}:holdouts``   hashes of layer / holdout definitions (JSON) by key
- ``{p}:sticky:{unit}:{id}``          hash of one unit's sticky assignments: ``{experiment}#{phase}`` → variant
- ``{p}:definitions-lock``            held while a definition changes, so versions and layer buckets never race
- ``{p}:definitions-changed``         pub/sub channel: a definition changed (the message is the key)
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_EVENTS_TOPIC = "splitstream.events"
METRIC_INDEX_SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = "ss"

    @property
    def experiments(self) -> str:
        return f"{self.prefix}:experiments"

    def experiment(self, key: str) -> str:
        return f"{self.prefix}:exp:{key}"

    def event_metrics(self, event: str) -> str:
        return f"{self.prefix}:event-metrics:{event}"

    def variant_stats(self, experiment: str, variant: str) -> str:
        return f"{self.prefix}:exp:{experiment}:v:{variant}"

    def exposed_user(self, experiment: str, user_id: str) -> str:
        return f"{self.prefix}:exp:{experiment}:u:{user_id}"

    def looks(self, experiment: str) -> str:
        return f"{self.prefix}:exp:{experiment}:looks"

    def segment_values(self, scope: str, dimension: str) -> str:
        return f"{self.prefix}:exp:{scope}:segvals:{dimension}"

    def segment_stats(self, scope: str, dimension: str, value: str, variant: str) -> str:
        return f"{self.prefix}:exp:{scope}:seg:{dimension}:{value}:v:{variant}"

    def snapshots(self, scope: str) -> str:
        return f"{self.prefix}:exp:{scope}:snapshots"

    def pending(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}:pending"

    def seen(self, event_id: str) -> str:
        return f"{self.prefix}:seen:{event_id}"

    def stats(self, counter: str) -> str:
        return f"{self.prefix}:stats:{counter}"

    def history(self, experiment: str) -> str:
        return f"{self.prefix}:exp:{experiment}:history"

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


def metric_index_entry(experiment: str, metric: str, metric_type: str) -> str:
    return METRIC_INDEX_SEPARATOR.join((experiment, metric, metric_type))


def sum_field(metric: str) -> str:
    return f"{metric}:sum"


def sum_squares_field(metric: str) -> str:
    return f"{metric}:sumsq"
