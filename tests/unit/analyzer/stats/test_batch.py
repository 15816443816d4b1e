"""The vectorised readout must give exactly what the scalar engine gives, pair by pair, degenerate pairs included."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from services.analyzer.stats.batch import compare_batch
from services.analyzer.stats.frequentist import Arm, compare
from services.analyzer.stats.results import Comparison, Status
from splitstream.statistics import Proportion, SampleMoments


@st.composite
def proportions(draw: st.DrawFn) -> Proportion:
    n = draw(st.integers(0, 200_000))
    return Proportion(n, draw(st.integers(0, n)))


@st.composite
def moments(draw: st.DrawFn) -> SampleMoments:
    values = draw(st.lists(st.floats(-50, 500, allow_nan=False, allow_infinity=False), max_size=30))
    repeat = draw(st.integers(1, 1000))
    return SampleMoments.of(values * repeat)


pairs = st.one_of(st.tuples(proportions(), proportions()), st.tuples(moments(), moments()))


def _same(ours: Comparison, reference: Comparison) -> None:
    assert (ours.status, ours.method, ours.reason, ours.kind) == (
        reference.status, reference.method, reference.reason, reference.kind,
    )
    for name in ("effect", "ci_lower", "ci_upper", "p_value", "std_error", "statistic", "dof"):
        a, b = getattr(ours, name), getattr(reference, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300), (name, a, b)


@settings(max_examples=60, deadline=None)
@given(st.lists(pairs, min_size=1, max_size=40), st.sampled_from([0.01, 0.05, 0.2]))
def test_batch_equals_the_scalar_engine(items: list[tuple[Arm, Arm]], alpha: float) -> None:
    for ours, reference in zip(compare_batch(items, alpha), (compare(c, t, alpha) for c, t in items), strict=True):
        _same(ours.relative, reference.relative)
        _same(ours.absolute, reference.absolute)


def test_degenerate_pairs_keep_their_statuses() -> None:
    items: list[tuple[Arm, Arm]] = [
        (Proportion(1000, 0), Proportion(1000, 12)),  # zero-rate control: relative undefined, absolute by z/Fisher
        (Proportion(1, 1), Proportion(500, 50)),  # too few users
        (Proportion(10_000, 1000), Proportion(10_000, 1100)),  # regular
    ]
    results = compare_batch(items)
    assert results[0].relative.status is Status.UNDEFINED and results[0].absolute.p_value is not None
    assert results[1].absolute.status is Status.INSUFFICIENT_DATA
    assert results[2].relative.status is Status.OK
    assert compare_batch([]) == []
