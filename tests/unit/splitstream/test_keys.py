"""The shared Redis layout: a user's keys share a Redis Cluster hash tag; dedup marks are short and stable."""

from __future__ import annotations

from splitstream.keys import (
    DAILY_TOTALS_FIELD_BYTES,
    DEDUP_MARK_BYTES,
    USER_BUCKETS,
    RedisKeys,
    daily_totals_field,
    dedup_mark,
    user_place,
    user_record,
)

KEYS = RedisKeys("ss")


def _hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first ``{`` and the next ``}``, if not empty."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1:end] if start >= 0 and end > start + 1 else key


def test_a_users_state_carries_the_users_hash_tag_and_waiting_events_the_experiments() -> None:
    for user in ("u42", "tenant:7:ann", "a}b"):
        assert _hash_tag(KEYS.user_state(user)) == _hash_tag(KEYS.legacy_pending(user))
        assert _hash_tag(KEYS.pending("checkout~2", user)) == _hash_tag(KEYS.variant_stats("checkout", "control"))
    assert _hash_tag(KEYS.user_state("u42")) == "u42"
    assert KEYS.user_state("u42") == "ss:user:{u42}"
    assert KEYS.pending("checkout~2", "u42") == "ss:exp:{checkout}~2:pending:u42"
    assert KEYS.legacy_pending("u42") == "ss:user:{u42}:pending"


def test_a_dedup_mark_is_eight_bytes_that_depend_only_on_the_event_id() -> None:
    marks = {dedup_mark(f"order-{index}") for index in range(10_000)}

    assert len(marks) == 10_000
    assert all(len(mark) == DEDUP_MARK_BYTES == 8 for mark in marks)
    assert dedup_mark("order-1") == dedup_mark("order-1") != dedup_mark("order-2")


def test_a_daily_totals_field_is_six_bytes_for_any_event_name_and_day_and_never_looks_like_a_mark() -> None:
    names = [f"checkout.step{index}.completed_with_a_long_event_name" for index in range(1_000)]
    fields = {daily_totals_field(name, day) for name in names for day in (20_429, 20_430)}

    assert len(fields) == 2 * len(names)
    assert all(len(field) == DAILY_TOTALS_FIELD_BYTES == 6 != DEDUP_MARK_BYTES for field in fields)
    assert daily_totals_field("purchase", 20_429) != daily_totals_field("purchases", 20_429)
    # The name's bytes, then the day's: 20,429 days since the epoch is 0x4fcd.
    assert daily_totals_field("purchase", 20_429)[:4] == daily_totals_field("purchase", 20_430)[:4]
    assert daily_totals_field("purchase", 20_429)[4:] == b"\x4f\xcd"


def test_every_key_of_an_experiment_carries_its_key_as_hash_tag_in_every_phase() -> None:
    for scope in ("checkout", "checkout~2"):
        names = [
            KEYS.variant_stats(scope, "control"), KEYS.exposed_users(scope, user_place("u{1}:x").bucket),
            KEYS.looks(scope),
            KEYS.segment_values(scope, "channel"), KEYS.segment_stats(scope, "channel", "app", "control"),
            KEYS.snapshots(scope),
        ]
        assert {_hash_tag(name) for name in names} == {"checkout"}
    assert _hash_tag(KEYS.experiment("checkout")) == _hash_tag(KEYS.history("checkout")) == "checkout"
    assert KEYS.variant_stats("checkout~2", "control") == "ss:exp:{checkout}~2:v:control"
    assert KEYS.experiment("checkout") == "ss:exp:{checkout}"


def test_users_spread_evenly_over_the_buckets_of_exposed_users_each_under_an_eight_byte_field() -> None:
    counts = [0] * USER_BUCKETS
    fields = set()
    for index in range(100 * USER_BUCKETS):
        place = user_place(f"user-{index}")
        counts[place.bucket] += 1
        fields.add(place.field)

    assert min(counts) > 50 and max(counts) < 150  # a binomial(409600, 1/4096) stays within ±5 sd of 100
    assert len(fields) == 100 * USER_BUCKETS and {len(field) for field in fields} == {8}
    assert user_place("550e8400-e29b-41d4-a716-446655440000") == user_place("550e8400-e29b-41d4-a716-446655440000")


def test_a_user_record_reads_back_fields_whose_values_hold_equals_signs() -> None:
    raw = "\x1f".join(["v=control", "t=1765132800000", "m:revenue=12.5", "s:utm=a=b c"]).encode()

    assert user_record(raw) == {"v": "control", "t": "1765132800000", "m:revenue": "12.5", "s:utm": "a=b c"}
    assert user_record(None) == {}
