"""The boundary-valid pieces: Newcombe's interval against its published values, the choice of test."""

from __future__ import annotations

import pytest

from services.analyzer.stats.proportions import (
    MIN_EXPECTED_CELL,
    boundary_difference,
    newcombe_interval,
    smallest_expected_cell,
    wilson_interval,
)
from services.analyzer.stats.results import Method
from splitstream.statistics import Proportion


@pytest.mark.parametrize(
    ("treatment", "control", "published"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873–890, Table II, method 10, given to 4 decimals.
        (Proportion(70, 56), Proportion(80, 48), (0.0524, 0.3339)),
        (Proportion(10, 9), Proportion(10, 3), (0.1705, 0.8090)),
        (Proportion(10, 0), Proportion(20, 0), (-0.1611, 0.2775)),
        (Proportion(10, 10), Proportion(20, 0), (0.6791, 1.0000)),
    ],
)
def test_newcombe_interval_reproduces_the_published_table(
    treatment: Proportion, control: Proportion, published: tuple[float, float]
) -> None:
    low, high = newcombe_interval(control, treatment, alpha=0.05)
    assert (low, high) == pytest.approx(published, abs=5e-5)


def test_wilson_interval_is_inside_the_unit_interval_at_the_boundary() -> None:
    low, high = wilson_interval(Proportion(30, 0), alpha=0.05)
    assert low == 0.0 and 0 < high < 1
    low, high = wilson_interval(Proportion(30, 30), alpha=0.05)
    assert 0 < low < 1 and high == pytest.approx(1.0)


def test_smallest_expected_cell_is_the_smallest_count_under_the_null() -> None:
    # pooled rate 10/400: expected conversions 100·0.025 = 2.5 in the small arm
    assert smallest_expected_cell(Proportion(100, 0), Proportion(300, 10)) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("control", "treatment", "method"),
    [
        (Proportion(100, 0), Proportion(300, 10), Method.FISHER_EXACT),
        (Proportion(2000, 0), Proportion(2000, 30), Method.POOLED_Z),
        (Proportion(500, 500), Proportion(500, 480), Method.POOLED_Z),
        (Proportion(20, 20), Proportion(20, 19), Method.FISHER_EXACT),
    ],
)
def test_test_choice_follows_cochrans_rule(control: Proportion, treatment: Proportion, method: Method) -> None:
    result = boundary_difference(control, treatment, alpha=0.05)
    assert result.method is method
    assert (smallest_expected_cell(control, treatment) >= MIN_EXPECTED_CELL) == (method is Method.POOLED_Z)
    assert result.reason and method.value.split("_")[0] in result.reason.lower()


def test_same_boundary_in_both_arms_says_there_is_no_evidence() -> None:
    result = boundary_difference(Proportion(1000, 0), Proportion(1000, 0), alpha=0.05)
    assert result.p_value == 1.0
    assert result.reason and "no evidence" in result.reason
    assert result.ci_lower is not None and result.ci_upper is not None
    assert result.ci_lower < 0 < result.ci_upper
