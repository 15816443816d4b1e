"""Holm and Benjamini–Hochberg beyond the golden case: their defining formulas, order, untested members, bad input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analyzer.stats.multiple import Correction, adjust_p_values, benjamini_hochberg, holm

P_VALUES = st.lists(st.floats(0, 1), min_size=1, max_size=30)


def holm_by_definition(p_values: list[float]) -> list[float]:
    """min(1, max over the j ranked at or before i of (m − rank_j + 1)·p_j), pair by pair in plain Python."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rank = {index: position for position, index in enumerate(order)}
    return [
        min(1.0, max((m - rank[j]) * p_values[j] for j in range(m) if rank[j] <= rank[i]))
        for i in range(m)
    ]


def bh_by_definition(p_values: list[float]) -> list[float]:
    """min(1, min over the j ranked at or after i of m·p_j/rank_j), pair by pair in plain Python."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rank = {index: position + 1 for position, index in enumerate(order)}
    return [
        min(1.0, min(p_values[j] / (rank[j] / m) for j in range(m) if rank[j] >= rank[i]))
        for i in range(m)
    ]


@settings(max_examples=150, deadline=None)
@given(p_values=P_VALUES, alpha=st.sampled_from([0.01, 0.05, 0.1]))
def test_adjusted_p_values_follow_the_definitions(p_values: list[float], alpha: float) -> None:
    for result, expected in ((holm(p_values, alpha), holm_by_definition(p_values)),
                             (benjamini_hochberg(p_values, alpha), bh_by_definition(p_values))):
        assert result.adjusted == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert result.raw == tuple(p_values) and result.family_size == len(p_values)
        for raw, adjusted, rejected in zip(p_values, result.adjusted, result.reject, strict=True):
            assert adjusted is not None and raw <= adjusted <= 1 and math.isfinite(adjusted)
            # Away from ties with α, rejecting is the adjusted p-value being at most α.
            if abs(adjusted - alpha) > 1e-12:
                assert rejected == (adjusted <= alpha)


@settings(max_examples=100, deadline=None)
@given(p_values=P_VALUES)
def test_fdr_control_is_never_stricter_than_family_wise_control(p_values: list[float]) -> None:
    holm_adjusted, bh_adjusted = holm(p_values).adjusted, benjamini_hochberg(p_values).adjusted
    for h, b in zip(holm_adjusted, bh_adjusted, strict=True):
        assert h is not None and b is not None and b <= h * (1 + 1e-12)
    assert sum(benjamini_hochberg(p_values).reject) >= sum(holm(p_values).reject)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), p_values=P_VALUES)
def test_result_follows_the_input_order(data: st.DataObject, p_values: list[float]) -> None:
    permutation = data.draw(st.permutations(range(len(p_values))))
    shuffled = [p_values[i] for i in permutation]
    for correction in Correction:
        original, reordered = adjust_p_values(p_values, correction), adjust_p_values(shuffled, correction)
        assert reordered.adjusted == tuple(original.adjusted[i] for i in permutation)
        assert reordered.reject == tuple(original.reject[i] for i in permutation)


def test_untested_comparisons_stay_out_of_the_family() -> None:
    with_gaps = holm([None, 0.01, None, 0.04])
    assert with_gaps.family_size == 2
    assert with_gaps.adjusted[0] is None and with_gaps.adjusted[2] is None
    assert with_gaps.adjusted[1::2] == pytest.approx((0.02, 0.04))
    assert with_gaps.reject == (False, True, False, True)
    assert with_gaps.adjusted[1::2] == holm([0.01, 0.04]).adjusted


def test_empty_and_all_untested_families() -> None:
    empty = benjamini_hochberg([])
    assert empty.adjusted == () and empty.reject == () and empty.family_size == 0
    untested = holm([None, None])
    assert untested.adjusted == (None, None) and untested.reject == (False, False)


def test_a_single_test_is_not_adjusted() -> None:
    for correction in ("holm", "fdr_bh"):
        result = adjust_p_values([0.03], correction)
        assert result.adjusted == (0.03,) and result.reject == (True,)


@pytest.mark.parametrize(
    ("p_values", "alpha", "correction"),
    [([0.1, 1.2], 0.05, "holm"), ([-0.01], 0.05, "holm"), ([math.nan], 0.05, "fdr_bh"),
     ([0.1], 0.0, "holm"), ([0.1], 0.05, "bonferroni")],
)
def test_invalid_arguments_raise(p_values: list[float], alpha: float, correction: str) -> None:
    with pytest.raises(ValueError):
        adjust_p_values(p_values, correction, alpha)
