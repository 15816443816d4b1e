"""The sample-ratio check beyond the golden cases: statuses, degenerate counts, bad arguments."""

from __future__ import annotations

import pytest
from scipy import stats

from services.analyzer.stats import Status, srm_check
from services.analyzer.stats.srm import MIN_USERS_PER_ARM


def test_statistic_is_pearsons_with_expected_counts_from_the_weights() -> None:
    observed, weights = [480, 260, 260], [2.0, 1.0, 1.0]
    expected = [500, 250, 250]
    by_hand = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    result = srm_check(observed, weights)
    assert result.statistic == pytest.approx(by_hand)
    assert result.p_value == pytest.approx(stats.chi2.sf(by_hand, 2))
    assert result.dof == 2
    assert result.status is Status.OK and result.reason is None


def test_clear_mismatch_is_flagged_with_a_reason() -> None:
    result = srm_check([5000, 5400], [1, 1])
    assert result.p_value is not None and result.p_value < 0.001
    assert result.status is Status.MISMATCH
    assert result.reason and "5000/5400" in result.reason


def test_threshold_decides_the_flag() -> None:
    observed = [1000, 1090]
    p_value = srm_check(observed, [1, 1]).p_value
    assert p_value is not None and 0.001 < p_value < 0.05
    assert srm_check(observed, [1, 1], threshold=0.05).status is Status.MISMATCH
    assert srm_check(observed, [1, 1]).status is Status.OK


def test_no_users_is_insufficient_data_without_numbers() -> None:
    result = srm_check([0, 0, 0], [1, 1, 1])
    assert result.status is Status.INSUFFICIENT_DATA
    assert result.p_value is None and result.statistic is None
    assert result.reason


@pytest.mark.parametrize("observed", [[3, 1], [7, 500], [500, 7, 500], [0, 10_000]])
def test_an_arm_below_8_users_is_not_tested(observed: list[int]) -> None:
    result = srm_check(observed, [1] * len(observed))
    assert result.status is Status.INSUFFICIENT_DATA
    assert result.p_value is None and result.statistic is None
    assert result.reason and str(MIN_USERS_PER_ARM) in result.reason
    assert result.dof == len(observed) - 1


def test_8_users_in_every_arm_is_enough_to_run_the_test() -> None:
    assert MIN_USERS_PER_ARM == 8
    balanced = srm_check([8, 8], [1, 1])
    assert balanced.status is Status.OK and balanced.p_value == pytest.approx(1.0)
    # 8 users where 1% of 808 (≈ 8) are expected is fine; 8 where 0.1% (≈ 1) are expected is a mismatch.
    assert srm_check([8, 800], [1, 99]).status is Status.OK
    skewed = srm_check([8, 800], [1, 999])
    assert skewed.status is Status.MISMATCH and skewed.p_value is not None and skewed.p_value < 0.001


@pytest.mark.parametrize(
    ("observed", "weights", "threshold"),
    [
        ([10, 10], [1, 1, 1], 0.001),
        ([10], [1], 0.001),
        ([10, -1], [1, 1], 0.001),
        ([10, 10], [1, 0], 0.001),
        ([10, 10], [1, float("inf")], 0.001),
        ([10, 10], [1, 1], 0.0),
    ],
)
def test_invalid_arguments_raise(observed: list[int], weights: list[float], threshold: float) -> None:
    with pytest.raises(ValueError):
        srm_check(observed, weights, threshold)
