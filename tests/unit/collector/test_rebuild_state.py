"""Which keys a rebuild replaces, and which definition changes stop it: pure parts of rebuild_state."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.collector.rebuild_state import derived_family, fold_relevant_changes, staging_keys
from splitstream.keys import RedisKeys, stats_scope

KEYS = RedisKeys("ss")
SCOPE = stats_scope("checkout", 2)


@pytest.mark.parametrize(("key", "family"), [
    (KEYS.variant_stats("checkout", "control"), "variant statistics"),
    (KEYS.variant_stats(SCOPE, "control"), "variant statistics"),
    (KEYS.exposed_users("checkout", 0), "exposed users"),
    (KEYS.exposed_users(SCOPE, 4095), "exposed users"),
    ("ss:exp:{checkout}:u:tenant:7:looks", "exposed users, one hash each"),
    (KEYS.segment_stats("checkout", "channel", "mini:program", "treatment"), "segment statistics"),
    (KEYS.segment_values(SCOPE, "channel"), "segment values"),
    (KEYS.pending("checkout", "u:1"), "pending events"),
    (KEYS.pending(SCOPE, "u}:pending"), "pending events"),
    (KEYS.legacy_pending("u:1"), "pending events, every experiment's at once"),
    (KEYS.legacy_pending("u}:pending"), "pending events, every experiment's at once"),
    (KEYS.user_state("u 1"), "user states"),
    (KEYS.user_state("order-981:pending"), "user states"),
    (KEYS.user_state("a}:pending"), "user states"),
    (KEYS.stats("applied"), "counters"),
])
def test_keys_the_fold_writes_are_derived(key: str, family: str) -> None:
    assert derived_family(key, KEYS) == family


@pytest.mark.parametrize("key", [
    KEYS.experiments,
    KEYS.experiment("checkout"),
    KEYS.event_metrics("purchase"),
    KEYS.history("checkout"),
    KEYS.looks("checkout"),
    KEYS.looks(SCOPE),
    KEYS.snapshots(SCOPE),
    KEYS.layers,
    KEYS.holdouts,
    KEYS.sticky("user_id", "u42"),
    KEYS.definitions_lock,
    "ss:user:u42",  # no such family: a user's state has its id in braces
])
def test_definitions_audit_analyzer_records_and_assignments_are_not(key: str) -> None:
    assert derived_family(key, KEYS) is None


def test_a_key_under_another_prefix_is_not_ours() -> None:
    staging = staging_keys(KEYS)

    assert staging.prefix == "ss-rebuild"
    assert derived_family(staging.user_state("u1"), KEYS) is None
    assert derived_family(staging.user_state("u1"), staging) == "user states"
    assert derived_family(RedisKeys("ss2").stats("applied"), KEYS) is None


METRIC = {"key": "revenue", "type": "mean", "event": "purchase", "role": "secondary", "margin": 0.0, "cap": None}


def entry(action: str, **changes: tuple[Any, Any]) -> bytes:
    return orjson.dumps({
        "action": action, "changes": {name: {"before": old, "after": new} for name, (old, new) in changes.items()},
    })


def test_a_creation_and_changes_the_fold_does_not_read_are_no_reason_to_refuse() -> None:
    history = [
        entry("create", metrics=(None, [METRIC]), variants=(None, [{"key": "a", "weight": 0.5}])),
        entry("update", variants=([{"key": "a", "weight": 0.5}], [{"key": "a", "weight": 0.7}])),
        entry("update", metrics=([METRIC], [{**METRIC, "role": "guardrail", "margin": 0.02}])),
        entry("update", analysis=({"alpha": 0.05, "cuped_lookback_days": 14}, {"alpha": 0.1,
                                                                               "cuped_lookback_days": 14})),
        entry("start", status=("draft", "running")),
    ]

    assert fold_relevant_changes(history) == []


def test_changes_to_what_the_fold_reads_are_named() -> None:
    history = [
        entry("update", metrics=([METRIC], [{**METRIC, "cap": 100.0}])),
        entry("new_phase", phase=(1, 2), variants=([{"key": "a"}], [{"key": "a"}, {"key": "b"}])),
        entry("update", segments=([], ["channel"])),
        entry("update", analysis=({"cuped_lookback_days": 14}, {"cuped_lookback_days": 7})),
    ]

    assert fold_relevant_changes(history) == ["analysis", "metrics", "phase", "segments", "variants"]


def test_an_unreadable_audit_entry_counts_as_a_change() -> None:
    assert fold_relevant_changes([b"{not json"]) == ["(unreadable audit entry)"]
