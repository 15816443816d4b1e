import pytest

from services.assignment.cache import TtlCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_exactly_its_ttl() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(2.0, clock)
    cache.put("a", 1)

    clock.now = 101.999
    assert cache.get("a") == 1
    clock.now = 102.0
    assert cache.get("a") is None
    assert len(cache) == 0


def test_putting_again_replaces_the_value_and_restarts_the_ttl() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(2.0, clock)
    cache.put("a", 1)
    clock.now = 101.5
    cache.put("a", 2)

    clock.now = 103.0
    assert cache.get("a") == 2
    assert cache.get("b") is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(0, FakeClock())
    cache.put("a", 1)
    assert cache.get("a") is None
    assert len(cache) == 0


def test_a_negative_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        TtlCache(-1)
