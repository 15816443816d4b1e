"""Group-sequential looks without Redis: the plan's validation, which look is due, the record, the reading at it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.analyzer.looks import (
    LookRecord,
    build_look,
    due_threshold,
    first_look_users,
    goal_rejected,
    read_at_latest_look,
    thresholds_reached,
    waiting_reading,
)
from services.analyzer.stats import EffectKind, Method, Status, TreatmentComparison, compare
from services.analyzer.stats.sequential import group_sequential_test
from splitstream.experiment import AnalysisMethod, AnalysisPlan, ExperimentSpec
from splitstream.statistics import Proportion

PLAN = AnalysisPlan(method=AnalysisMethod.GROUP_SEQUENTIAL, planned_users_per_variant=10_000, looks=4)
NOW = datetime(2024, 5, 1, tzinfo=UTC)


def _fixed(control: tuple[int, int], treatment: tuple[int, int]) -> TreatmentComparison:
    return compare(Proportion(*control), Proportion(*treatment))


def _look(recorded: list[LookRecord], users: int, converted: tuple[int, int]) -> LookRecord:
    arms = {"control": users, "b": users + 10}
    threshold = due_threshold(recorded, arms, PLAN)
    assert threshold is not None
    cells = {("goal", "b"): _fixed((users, converted[0]), (users + 10, converted[1]))}
    return build_look(recorded, arms, PLAN, threshold, cells, NOW)


# --- the plan -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("planned", [{}, {"planned_users_per_variant": None}])
def test_group_sequential_needs_a_planned_horizon(planned: dict[str, None]) -> None:
    with pytest.raises(ValidationError) as error:
        AnalysisPlan(method=AnalysisMethod.GROUP_SEQUENTIAL, **planned)
    assert [e["loc"] for e in error.value.errors()] == [("planned_users_per_variant",)]
    assert "group_sequential" in error.value.errors()[0]["msg"]


def test_the_missing_horizon_is_named_inside_a_spec() -> None:
    with pytest.raises(ValidationError) as error:
        ExperimentSpec.model_validate({
            "key": "exp", "variants": [{"key": "a"}, {"key": "b"}],
            "analysis": {"method": "group_sequential", "looks": 3},
        })
    assert [e["loc"] for e in error.value.errors()] == [("analysis", "planned_users_per_variant")]


def test_other_methods_need_no_horizon_and_looks_default_to_five() -> None:
    assert all(AnalysisPlan(method=m).planned_users_per_variant is None
               for m in AnalysisMethod if m is not AnalysisMethod.GROUP_SEQUENTIAL)
    assert AnalysisPlan().looks == 5


@pytest.mark.parametrize("looks", [0, 101])
def test_looks_stay_between_1_and_100(looks: int) -> None:
    with pytest.raises(ValidationError, match="looks"):
        AnalysisPlan(method=AnalysisMethod.GROUP_SEQUENTIAL, planned_users_per_variant=1000, looks=looks)


# --- the schedule ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("planned", "first"), [(10_000, 2_500), (10_001, 2_501), (3, 1)])
def test_the_first_look_is_due_exactly_at_its_threshold(planned: int, first: int) -> None:
    plan = PLAN.model_copy(update={"planned_users_per_variant": planned})
    assert first_look_users(plan) == first
    assert thresholds_reached(first - 1, plan) == 0 and thresholds_reached(first, plan) == 1


def test_the_smallest_variant_sets_the_schedule() -> None:
    assert due_threshold([], {"control": 2_600, "b": 2_400}, PLAN) is None
    assert due_threshold([], {"control": 2_600, "b": 2_500}, PLAN) == 1
    assert due_threshold([], {"control": -5, "b": 3_000}, PLAN) is None


def test_thresholds_crossed_together_make_one_look_at_the_actual_fraction() -> None:
    first = _look([], 7_600, (760, 790))
    assert (first.look, first.threshold, first.information_fraction) == (1, 3, 0.76)
    assert due_threshold([first], {"control": 9_999, "b": 10_000}, PLAN) is None
    last = _look([first], 12_000, (1_200, 1_250))
    assert (last.look, last.threshold, last.information_fraction) == (2, 4, 1.2)
    # The horizon's look is the last one, however far the data go past it.
    assert due_threshold([first, last], {"control": 50_000, "b": 50_000}, PLAN) is None


# --- the record and the reading -------------------------------------------------------------------------------


def test_a_record_keeps_both_scales_and_survives_json() -> None:
    fixed = _fixed((2_600, 260), (2_610, 290))
    record = _look([], 2_600, (260, 290))
    cell = record.cell("goal", "b")
    assert cell is not None and record.users == {"control": 2_600, "b": 2_610}
    for stored, comparison in ((cell.relative, fixed.relative), (cell.absolute, fixed.absolute)):
        assert (stored.status, stored.effect, stored.std_error) == (Status.OK, comparison.effect, comparison.std_error)
    assert LookRecord.model_validate_json(record.model_dump_json()) == record


def test_an_estimate_without_the_normal_approximation_is_recorded_with_its_reason() -> None:
    fixed = _fixed((3_000, 0), (3_000, 4))  # a 0% control: the engine falls back to exact tests, and no lift exists
    assert fixed.absolute.method is not Method.WELCH_T
    record = build_look([], {"control": 3_000, "b": 3_000}, PLAN, 1, {("goal", "b"): fixed}, NOW)
    reading = read_at_latest_look([record], "goal", "b", 0.05)
    for comparison in (reading.relative, reading.absolute):
        assert comparison.method is Method.GROUP_SEQUENTIAL and comparison.status is not Status.OK
        assert comparison.reason and comparison.ci_lower is None


def test_the_reading_is_the_engines_test_at_the_latest_look() -> None:
    first = _look([], 2_600, (260, 280))
    second = _look([first], 5_100, (510, 700))
    fixed = _fixed((5_100, 510), (5_110, 700))
    reading = read_at_latest_look([first, second], "goal", "b", 0.05)
    for comparison, scale, kind in ((reading.relative, fixed.relative, EffectKind.RELATIVE),
                                    (reading.absolute, fixed.absolute, EffectKind.ABSOLUTE)):
        assert scale.effect is not None and scale.std_error is not None
        expected = group_sequential_test(scale.effect, scale.std_error, [0.26, 0.51], 0.05, kind)
        assert (comparison.effect, comparison.ci_lower, comparison.ci_upper, comparison.p_value) == (
            expected.effect, expected.ci_lower, expected.ci_upper, None)
    assert reading.group_sequential is not None
    assert (reading.group_sequential.look, reading.group_sequential.reject) == (2, True)
    assert goal_rejected([first, second], "goal", 0.05) and not goal_rejected([first], "goal", 0.05)
    assert not goal_rejected([first, second], None, 0.05) and not goal_rejected([], "goal", 0.05)


def test_a_comparison_missing_from_the_look_is_undefined() -> None:
    reading = read_at_latest_look([_look([], 2_600, (260, 280))], "revenue", "b", 0.05)
    assert reading.relative.status is Status.UNDEFINED and "look 1" in (reading.relative.reason or "")


def test_before_the_first_look_nothing_is_read() -> None:
    reading = waiting_reading(PLAN, 2_000)
    assert reading.relative.status is Status.INSUFFICIENT_DATA and reading.relative.effect is None
    assert reading.relative.reason == "first scheduled look at 2500 users per variant (the smallest variant has 2000)"
    with pytest.raises(ValueError, match="no look"):
        read_at_latest_look([], "goal", "b", 0.05)
