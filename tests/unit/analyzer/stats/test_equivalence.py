"""TOST equivalence: p-value and 1 − 2α interval agree, it builds on the Welch comparison, degenerate data."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from services.analyzer.stats import EffectKind, Method, Status, absolute_difference, relative_difference
from services.analyzer.stats.equivalence import equivalence_compare, equivalence_region, equivalence_test
from splitstream.statistics import Proportion, SampleMoments


@settings(max_examples=200, deadline=None)
@given(
    effect=st.floats(-0.2, 0.2),
    std_error=st.floats(1e-4, 0.1),
    margin=st.floats(0.005, 0.1),
    dof=st.none() | st.floats(3, 1e6),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_equivalent_exactly_when_the_1_minus_2_alpha_interval_is_inside_the_margin(
    effect: float, std_error: float, margin: float, dof: float | None, alpha: float
) -> None:
    result = equivalence_test(effect, std_error, margin, alpha, dof)
    assert result.status is Status.OK and result.p_value is not None
    assert result.ci_lower is not None and result.ci_upper is not None
    inside = -margin < result.ci_lower and result.ci_upper < margin
    if min(abs(result.ci_lower + margin), abs(result.ci_upper - margin)) > 1e-9:
        assert result.equivalent == inside
    assert result.equivalent == (result.p_value < alpha)
    assert (result.reason is None) == result.equivalent


def test_tost_p_value_is_the_larger_one_sided_p() -> None:
    distribution = stats.t(40)
    result = equivalence_test(0.01, 0.02, (-0.03, 0.05), alpha=0.05, dof=40)
    assert result.p_value_lower == pytest.approx(distribution.sf((0.01 + 0.03) / 0.02))
    assert result.p_value_upper == pytest.approx(distribution.sf((0.05 - 0.01) / 0.02))
    assert result.p_value == max(result.p_value_lower or 0, result.p_value_upper or 0)
    assert result.ci_lower == pytest.approx(0.01 - distribution.isf(0.05) * 0.02)


def test_normal_when_no_degrees_of_freedom() -> None:
    result = equivalence_test(0.0, 0.01, 0.02)
    assert result.p_value == pytest.approx(stats.norm.sf(2.0))
    assert result.equivalent and result.dof is None and result.method is Method.TOST


def test_large_near_identical_arms_are_proved_equivalent_and_small_ones_are_not() -> None:
    big_c, big_t = Proportion(200_000, 20_000), Proportion(200_000, 20_100)
    proved = equivalence_compare(big_c, big_t, 0.03)
    fixed = relative_difference(big_c, big_t)
    assert proved.status is Status.OK and proved.equivalent
    assert proved.effect == fixed.effect and proved.std_error == fixed.std_error and proved.dof == fixed.dof
    small = equivalence_compare(Proportion(2_000, 200), Proportion(2_000, 201), 0.03)
    assert small.status is Status.OK and not small.equivalent and small.reason


def test_absolute_margin_on_the_absolute_difference() -> None:
    control = SampleMoments(5_000, 50_000.0, 5_000 * 100.0 + 5_000 * 25.0)
    treatment = SampleMoments(5_000, 50_250.0, 5_000 * 101.0 + 5_000 * 25.0)
    fixed = absolute_difference(control, treatment)
    result = equivalence_compare(control, treatment, 0.5, kind=EffectKind.ABSOLUTE)
    assert result.kind is EffectKind.ABSOLUTE and result.effect == fixed.effect
    assert (result.lower_margin, result.upper_margin) == (-0.5, 0.5)
    assert result.status is Status.OK


@pytest.mark.parametrize(
    ("control", "treatment", "kind", "status"),
    [
        (Proportion(1, 0), Proportion(100, 10), EffectKind.RELATIVE, Status.INSUFFICIENT_DATA),
        (Proportion(100, 0), Proportion(100, 10), EffectKind.RELATIVE, Status.UNDEFINED),
        (Proportion(100, 0), Proportion(100, 10), EffectKind.ABSOLUTE, Status.UNDEFINED),
        (SampleMoments(10, 20.0, 40.0), SampleMoments(10, 20.0, 40.0), EffectKind.ABSOLUTE, Status.UNDEFINED),
    ],
)
def test_degenerate_data_is_never_called_equivalent(
    control: Proportion | SampleMoments, treatment: Proportion | SampleMoments, kind: EffectKind, status: Status
) -> None:
    result = equivalence_compare(control, treatment, 0.05, kind)
    assert result.status is status and result.reason and not result.equivalent
    assert result.p_value is None and result.ci_lower is None
    values = [getattr(result, f.name) for f in dataclasses.fields(result)]
    assert all(not isinstance(v, float) or math.isfinite(v) for v in values)


@pytest.mark.parametrize(
    "call",
    [
        lambda: equivalence_region(0.0),
        lambda: equivalence_region(-0.1),
        lambda: equivalence_region((0.01, 0.05)),
        lambda: equivalence_region((-0.05, math.inf)),
        lambda: equivalence_test(0.0, 0.01, 0.02, alpha=0.5),
        lambda: equivalence_test(0.0, -0.01, 0.02),
        lambda: equivalence_test(0.0, 0.01, 0.02, dof=0),
    ],
)
def test_invalid_arguments_raise(call: Any) -> None:
    with pytest.raises(ValueError):
        call()
