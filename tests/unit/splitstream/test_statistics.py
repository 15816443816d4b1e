import math

import pytest

from splitstream.statistics import Proportion, SampleMoments


def test_moments_merge_like_the_concatenated_sample() -> None:
    left, right = [1.0, 2.0, 3.5], [0.0, 10.0]
    merged = SampleMoments.of(left) + SampleMoments.of(right)
    whole = SampleMoments.of(left + right)
    assert merged == whole
    assert merged.mean == pytest.approx(16.5 / 5)
    values = left + right
    mean = sum(values) / len(values)
    assert merged.variance == pytest.approx(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def test_moments_of_too_few_users_have_no_variance() -> None:
    assert math.isnan(SampleMoments.zero().mean)
    assert math.isnan(SampleMoments.of([4.0]).variance)


def test_constant_sample_never_gets_a_negative_variance_from_rounding() -> None:
    for value in (0.1, 0.3, 1e8 + 0.1):
        variance = SampleMoments.of([value] * 1000).variance
        assert 0.0 <= variance < 1e-6 * max(1.0, value)


def test_proportion_merges_and_uses_p_one_minus_p() -> None:
    merged = Proportion(100, 10) + Proportion(300, 50)
    assert merged == Proportion(400, 60)
    assert merged.variance == pytest.approx(0.15 * 0.85)
    assert merged.moments() == SampleMoments(400, 60.0, 60.0)


@pytest.mark.parametrize(("n", "conversions"), [(-1, 0), (10, 11), (10, -1)])
def test_proportion_rejects_impossible_counts(n: int, conversions: int) -> None:
    with pytest.raises(ValueError):
        Proportion(n, conversions)
