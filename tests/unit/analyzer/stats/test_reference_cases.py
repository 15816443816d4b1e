"""The engine against the golden outputs of gbstats, statsmodels and scipy (rel. tol 1e-6, the file's precision).

Every reference a case carries is either compared here or listed in NOT_COMPARABLE with the reason, so a new
reference added to the file cannot be silently ignored.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.analyzer.stats import Comparison, Method, Status, compare, srm_check
from services.analyzer.stats.proportions import pooled_z_test
from splitstream.statistics import Proportion, SampleMoments
from tests.unit.analyzer.stats.reference import arm_of, case_ids, cases_of, reference_number

REL_TOL = 1e-6
# Values that are exactly 0 (identical arms) cannot be compared relatively.
ABS_TOL = 1e-12

NOT_COMPARABLE = {
    # A normal-approximation z interval with unpooled variance: a different method from every test the engine runs.
    "spotify_confidence_ztest_absolute",
}

# gbstats output name -> Comparison attribute
GBSTATS_OUTPUTS = {
    "expected": "effect",
    "ci_lower": "ci_lower",
    "ci_upper": "ci_upper",
    "p_value": "p_value",
    "welch_dof": "dof",
    "uplift_stddev": "std_error",
    "t_statistic": "statistic",
}

COMPARISON_CASES = cases_of("binomial", "mean")
SRM_CASES = cases_of("srm")


def close(expected: float | None) -> Any:
    return pytest.approx(expected, rel=REL_TOL, abs=ABS_TOL)


def arms(case: dict[str, Any]) -> tuple[Proportion | SampleMoments, Proportion | SampleMoments]:
    control, treatment = (arm_of(v) for v in case["inputs"]["variants"])
    return control, treatment


def assert_matches_gbstats(ours: Comparison, outputs: dict[str, Any]) -> None:
    assert ours.status is Status.OK, ours.reason
    assert ours.method is Method.WELCH_T
    compared = 0
    for name, attribute in GBSTATS_OUTPUTS.items():
        if name in outputs:
            assert getattr(ours, attribute) == close(reference_number(outputs[name])), name
            compared += 1
    assert compared >= 4


def assert_valid_where_gbstats_gives_up(ours: Comparison, derived_effect: float | None) -> None:
    """gbstats answers p = 1 with a [0, 0] interval here; the engine must either test validly or say why not."""
    if ours.status is Status.OK:
        assert ours.effect == close(derived_effect)
        assert ours.method in (Method.POOLED_Z, Method.FISHER_EXACT)
        assert ours.p_value is not None and 0 < ours.p_value <= 1
        assert ours.ci_lower is not None and ours.ci_upper is not None
        assert ours.ci_lower <= ours.effect <= ours.ci_upper
        assert ours.ci_upper - ours.ci_lower > 0, "a zero-width interval claims certainty the data do not have"
        assert ours.reason, "a test other than Welch's must say why it was used"
    else:
        assert ours.status is Status.UNDEFINED
        assert ours.p_value is None and ours.ci_lower is None and ours.ci_upper is None
        assert ours.reason
        assert ours.effect == (None if derived_effect is None else close(derived_effect))


@pytest.mark.parametrize("case", COMPARISON_CASES, ids=case_ids(COMPARISON_CASES))
def test_comparison_matches_references(case: dict[str, Any]) -> None:
    control, treatment = arms(case)
    alpha = case["inputs"]["alpha"]
    result = compare(control, treatment, alpha)
    results = case["results"]
    checked = set(NOT_COMPARABLE & results.keys())

    derived = results["derived"]["outputs"]
    for name in ("control_rate", "control_mean"):
        if name in derived:
            assert control.mean == close(derived[name])
    for name in ("treatment_rate", "treatment_mean"):
        if name in derived:
            assert treatment.mean == close(derived[name])
    checked.add("derived")

    for kind, ours, derived_effect in (
        ("relative", result.relative, reference_number(derived["relative_lift"])),
        ("absolute", result.absolute, reference_number(derived["absolute_difference"])),
    ):
        outputs = results[f"gbstats_frequentist_{kind}"]["outputs"]
        if outputs["error_message"] is None:
            assert_matches_gbstats(ours, outputs)
        else:
            assert_valid_where_gbstats_gives_up(ours, derived_effect)
        checked.add(f"gbstats_frequentist_{kind}")

    if (as_mean := results.get("gbstats_frequentist_relative_as_sample_mean")) is not None:
        assert isinstance(control, Proportion) and isinstance(treatment, Proportion)
        moments = compare(control.moments(), treatment.moments(), alpha)
        assert_matches_gbstats(moments.relative, as_mean["outputs"])
        checked.add("gbstats_frequentist_relative_as_sample_mean")

    if (ztest := results.get("statsmodels_proportions_ztest")) is not None:
        assert isinstance(control, Proportion) and isinstance(treatment, Proportion)
        outputs = ztest["outputs"]
        if outputs["p_value"] is None:
            # statsmodels divides by a pooled variance of 0; the engine must not take that route.
            assert result.absolute.method is Method.FISHER_EXACT
        else:
            z, p_value, _ = pooled_z_test(control, treatment)
            assert z == close(outputs["z_statistic"])
            assert p_value == close(outputs["p_value"])
        checked.add("statsmodels_proportions_ztest")

    if (welch := results.get("scipy_welch_ttest")) is not None:
        assert result.absolute.statistic == close(welch["outputs"]["t_statistic"])
        assert result.absolute.p_value == close(welch["outputs"]["p_value"])
        checked.add("scipy_welch_ttest")

    assert checked == set(results), f"references not checked: {set(results) - checked}"


@pytest.mark.parametrize("case", SRM_CASES, ids=case_ids(SRM_CASES))
def test_srm_matches_references(case: dict[str, Any]) -> None:
    inputs = case["inputs"]
    ours = srm_check(inputs["observed_users"], inputs["expected_weights"])
    scipy_result = case["results"]["scipy_chisquare"]
    assert ours.statistic == close(scipy_result["outputs"]["chi2_statistic"])
    assert ours.p_value == close(scipy_result["outputs"]["p_value"])
    assert ours.dof == scipy_result["settings"]["dof"]
    assert ours.p_value == close(case["results"]["gbstats_check_srm"]["outputs"]["p_value"])
    assert set(case["results"]) == {"scipy_chisquare", "gbstats_check_srm"}
    assert ours.status is (Status.MISMATCH if ours.p_value < 0.001 else Status.OK)


def test_reference_file_has_the_categories_this_engine_covers() -> None:
    assert len(COMPARISON_CASES) >= 10
    assert len(SRM_CASES) >= 3
