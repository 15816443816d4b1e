"""The sample-ratio check beyond the golden cases: statuses, degenerate counts, bad arguments."""

from __future__ import annotations

import pytest
from scipy import stats

from services.analyzer.stats import Status, srm_check


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


def test_few_users_keep_their_numbers_but_are_flagged_insufficient() -> None:
    result = srm_check([3, 1], [1, 1])
    assert result.status is Status.INSUFFICIENT_DATA
    assert result.p_value is not None and 0 < result.p_value <= 1


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
