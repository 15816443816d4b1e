from collections import Counter

import pytest
from scipy.stats import chisquare

from splitstream.hashing import assign, bucket, choose


def test_bucket_is_deterministic_and_salted() -> None:
    assert bucket("exp-a", "user-1") == bucket("exp-a", "user-1")
    assert bucket("exp-a", "user-1") != bucket("exp-b", "user-1")
    assert 0.0 <= bucket("exp-a", "user-1") < 1.0


def test_bucket_is_pinned_to_murmur3_so_sdks_can_reproduce_it() -> None:
    import mmh3

    # The published murmur3_x86_32 vector ("Hello, world!", seed 0) = 0xC0363E43 pins the algorithm, and the
    # second assertion pins the key format "<salt>:<user_id>" that SDKs must hash.
    assert mmh3.hash("Hello, world!", 0, signed=False) == 0xC0363E43
    assert bucket("salt", "user") == mmh3.hash("salt:user", 0, signed=False) / 2**32


@pytest.mark.parametrize(
    ("weights", "position", "expected"),
    [
        ([1, 1], 0.0, 0),
        ([1, 1], 0.4999, 0),
        ([1, 1], 0.5, 1),
        ([1, 3], 0.2499, 0),
        ([1, 3], 0.25, 1),
        ([1, 1, 2], 0.74, 2),
        ([1, 1], 0.999999999, 1),
    ],
)
def test_choose_slices_the_unit_interval_by_weight(weights: list[float], position: float, expected: int) -> None:
    assert choose(weights, position) == expected


@pytest.mark.parametrize(("weights", "position"), [([], 0.1), ([1, 0], 0.1), ([1, 1], 1.0), ([1, 1], -0.1)])
def test_choose_rejects_invalid_arguments(weights: list[float], position: float) -> None:
    with pytest.raises(ValueError):
        choose(weights, position)


def test_assignment_split_follows_the_weights() -> None:
    weights = [20.0, 30.0, 50.0]
    users = 30_000
    counts = Counter(assign("split-check", f"u{i}", weights) for i in range(users))
    expected = [users * w / sum(weights) for w in weights]
    observed = [counts[i] for i in range(len(weights))]
    assert chisquare(observed, expected).pvalue > 1e-4
