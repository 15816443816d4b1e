from services.assignment.adapters.sticky import StickyKey, StickyValue
from services.assignment.recent import RecentValues


def _key(index: int) -> StickyKey:
    return StickyKey("user_id", f"user-{index}", "exp#1")


def test_recent_values_keep_at_least_half_their_size_of_the_latest_and_drop_the_stale() -> None:
    cache: RecentValues[StickyKey, StickyValue] = RecentValues(4)
    for index in range(6):
        cache[_key(index)] = StickyValue(f"v{index}", exposure_logged=True)
    # Generations of two: {0, 1} were dropped when {4} began, {2, 3} is the older one, {4, 5} the newer.
    assert cache.get(_key(0)) is None and cache.get(_key(1)) is None
    assert cache.get(_key(5)) == StickyValue("v5", exposure_logged=True)
    assert cache.get(_key(4)) == StickyValue("v4", exposure_logged=True)
    assert cache.get(_key(2)) == StickyValue("v2", exposure_logged=True)


def test_a_hit_in_the_older_generation_survives_the_next_turnover() -> None:
    cache: RecentValues[StickyKey, StickyValue] = RecentValues(4)
    cache[_key(0)] = StickyValue("a", exposure_logged=True)
    cache[_key(1)] = StickyValue("b", exposure_logged=True)
    cache[_key(2)] = StickyValue("c", exposure_logged=True)  # 0 and 1 now in the older generation
    assert cache.get(_key(0)) == StickyValue("a", exposure_logged=True)  # promoted next to 2
    cache[_key(3)] = StickyValue("d", exposure_logged=True)  # turnover: 1 is gone, 0 was promoted
    assert cache.get(_key(1)) is None
    assert cache.get(_key(0)) == StickyValue("a", exposure_logged=True)
    cache.clear()
    assert cache.get(_key(0)) is None


def test_a_size_of_zero_keeps_nothing_and_one_keeps_the_latest() -> None:
    nothing: RecentValues[str, int] = RecentValues(0)
    nothing["a"] = 1
    assert nothing.get("a") is None
    one: RecentValues[str, int] = RecentValues(1)
    one["a"], one["b"] = 1, 2
    assert one.get("b") == 2


def test_values_round_trip_through_their_redis_encoding() -> None:
    for value in (StickyValue("treatment", exposure_logged=True), StickyValue("treatment", exposure_logged=False)):
        assert StickyValue.decode(value.encode()) == value
        assert StickyValue.decode(value.encode().encode()) == value
