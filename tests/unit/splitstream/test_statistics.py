import math
from collections.abc import Callable

import numpy as np
import pytest

from splitstream.statistics import CovariateMoments, Proportion, RatioMoments, SampleMoments


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


def test_ratio_moments_merge_like_the_concatenated_sample() -> None:
    numerators, denominators = [12.5, 0.0, 40.25, 7.0, 3.5], [1.0, 0.0, 3.0, 1.0, 2.0]
    merged = RatioMoments.of(numerators[:2], denominators[:2]) + RatioMoments.of(numerators[2:], denominators[2:])
    assert merged == RatioMoments.of(numerators, denominators)
    assert merged.numerator() == SampleMoments.of(numerators)
    assert merged.denominator() == SampleMoments.of(denominators)
    assert merged.covariance == pytest.approx(np.cov(numerators, denominators)[0, 1], rel=1e-12)
    assert RatioMoments.zero() + merged == merged


def test_covariate_moments_merge_and_split_into_outcome_and_covariate() -> None:
    outcomes, covariates = [3.0, 8.5, 0.0, 11.0, 2.25, 6.0], [2.0, 9.0, 1.0, 10.5, 0.0, 4.0]
    merged = CovariateMoments.of(outcomes[:4], covariates[:4]) + CovariateMoments.of(outcomes[4:], covariates[4:])
    assert merged == CovariateMoments.of(outcomes, covariates)
    assert merged.outcome() == SampleMoments.of(outcomes)
    assert merged.covariate() == SampleMoments.of(covariates)
    assert merged.covariance == pytest.approx(np.cov(outcomes, covariates)[0, 1], rel=1e-12)
    assert CovariateMoments.zero() + merged == merged


def test_paired_moments_of_one_user_have_no_covariance() -> None:
    assert math.isnan(RatioMoments.of([5.0], [1.0]).covariance)
    assert math.isnan(CovariateMoments.of([5.0], [4.0]).covariance)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RatioMoments(-1, 0.0, 0.0, 0.0, 0.0, 0.0),
        lambda: RatioMoments(3, 1.0, -1.0, 1.0, 1.0, 1.0),
        lambda: RatioMoments(3, 1.0, 1.0, 1.0, -1.0, 1.0),
        lambda: CovariateMoments(-1, 0.0, 0.0, 0.0, 0.0, 0.0),
        lambda: CovariateMoments(3, 1.0, -1.0, 1.0, 1.0, 1.0),
        lambda: CovariateMoments(3, 1.0, 1.0, 1.0, -1.0, 1.0),
        lambda: RatioMoments.of([1.0, 2.0], [1.0]),
        lambda: CovariateMoments.of([1.0], [1.0, 2.0]),
    ],
)
def test_paired_moments_reject_impossible_statistics(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()
