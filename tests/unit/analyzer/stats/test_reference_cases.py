"""The engine against the golden outputs of gbstats, statsmodels and scipy (rel. tol 1e-6, the file's precision).

Every reference a case carries is either compared here or listed in NOT_COMPARABLE with the reason, so a new
reference added to the file cannot be silently ignored.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from services.analyzer.stats import Comparison, EffectKind, Method, Status, compare, srm_check
from services.analyzer.stats.bayesian import (
    BayesianEffect,
    GaussianPrior,
    bayesian_compare,
    bayesian_compare_cuped,
    bayesian_compare_ratio,
)
from services.analyzer.stats.cuped import adjusted_estimate, compare_cuped
from services.analyzer.stats.frequentist import Alternative
from services.analyzer.stats.multiple import Correction, adjust_p_values
from services.analyzer.stats.power import PowerMethod, sample_size
from services.analyzer.stats.proportions import pooled_z_test
from services.analyzer.stats.ratio import compare_ratio, ratio_of, ratio_unit_variance
from services.analyzer.stats.sequential import confidence_sequence, welch_comparison
from services.analyzer.stats.srm import MIN_USERS_PER_ARM
from splitstream.statistics import Proportion, SampleMoments
from tests.unit.analyzer.stats.reference import (
    arm_of,
    case_ids,
    cases_of,
    cuped_arm_of,
    ratio_arm_of,
    reference_number,
)

REL_TOL = 1e-6
# Values that are exactly 0 (identical arms) cannot be compared relatively.
ABS_TOL = 1e-12

NOT_COMPARABLE = {
    # A normal-approximation z interval with unpooled variance: a different method from every test the engine runs.
    "spotify_confidence_ztest_absolute",
    # Sample size with the baseline variance 2·p1(1 − p1) for both arms and its own rounding: a different method from
    # the two the power module offers (unpooled normal formula, arcsine), so it is not reproduced.
    "spotify_confidence_samplesize",
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
            expected = reference_number(outputs[name])
            if expected is not None and math.isinf(expected):
                # A one-sided interval's open end: the engine reports it as None and says so in the reason.
                assert getattr(ours, attribute) is None and ours.reason, name
            else:
                assert getattr(ours, attribute) == close(expected), name
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
    if min(inputs["observed_users"]) < MIN_USERS_PER_ARM:
        # The engine runs the check only once every arm has 8 users; scipy and gbstats run it regardless.
        assert ours.status is Status.INSUFFICIENT_DATA and ours.reason and ours.p_value is None
        return
    scipy_result = case["results"]["scipy_chisquare"]
    assert ours.statistic == close(scipy_result["outputs"]["chi2_statistic"])
    assert ours.p_value == close(scipy_result["outputs"]["p_value"])
    assert ours.dof == scipy_result["settings"]["dof"]
    assert ours.p_value == close(case["results"]["gbstats_check_srm"]["outputs"]["p_value"])
    assert set(case["results"]) == {"scipy_chisquare", "gbstats_check_srm"}
    assert ours.p_value is not None
    assert ours.status is (Status.MISMATCH if ours.p_value < 0.001 else Status.OK)


def test_reference_file_has_the_categories_this_engine_covers() -> None:
    assert len(COMPARISON_CASES) >= 10
    assert len(SRM_CASES) >= 3


# --- ratio, CUPED and Bayesian cases -------------------------------------------------------------------------------

RATIO_CASES = cases_of("ratio")
CUPED_CASES = cases_of("cuped")
BAYESIAN_CASES = cases_of("bayesian")


def alternative_of(settings: dict[str, Any]) -> Alternative:
    """gbstats' two-sided test, or its one-sided "treatment greater/lesser" tests."""
    sides = str(settings.get("sides", "two-sided")).lower()
    if sides == "two-sided":
        return Alternative.TWO_SIDED
    return Alternative.LESS if "less" in sides else Alternative.GREATER


def assert_sound_where_gbstats_gives_up(ours: Comparison, derived_effect: float | None = None) -> None:
    """gbstats answers p = 1 with a [0, 0] interval (e.g. control mean 0); the engine tests validly or says why not."""
    if ours.status is Status.OK:
        assert ours.effect is not None and ours.p_value is not None
        if derived_effect is not None:
            assert ours.effect == close(derived_effect)
        assert 0 < ours.p_value <= 1
        assert ours.ci_lower is None or ours.ci_lower <= ours.effect
        assert ours.ci_upper is None or ours.effect <= ours.ci_upper
    else:
        assert ours.reason
        assert ours.p_value is None and ours.ci_lower is None and ours.ci_upper is None


@pytest.mark.parametrize("case", RATIO_CASES, ids=case_ids(RATIO_CASES))
def test_ratio_matches_references(case: dict[str, Any]) -> None:
    control, treatment = (ratio_arm_of(v) for v in case["inputs"]["variants"])
    alpha = case["inputs"]["alpha"]
    results = case["results"]
    checked = set(NOT_COMPARABLE & results.keys())

    derived = results["derived"]["outputs"]
    for arm, name in ((control, "control"), (treatment, "treatment")):
        assert ratio_of(arm) == close(reference_number(derived[f"{name}_ratio"]))
        assert ratio_unit_variance(arm) == close(reference_number(derived[f"{name}_unit_variance_delta"]))
        assert arm.covariance == close(reference_number(derived[f"{name}_cov_num_den"]))
    checked.add("derived")

    for kind in ("relative", "absolute"):
        reference = results[f"gbstats_frequentist_{kind}"]
        outputs = reference["outputs"]
        result = compare_ratio(control, treatment, alpha, alternative_of(reference["settings"]))
        ours: Comparison = getattr(result, kind)
        derived_effect = reference_number(derived["relative_lift" if kind == "relative" else "absolute_difference"])
        if outputs["error_message"] is None:
            assert_matches_gbstats(ours, outputs)
            for arm, name in ((control, "control"), (treatment, "treatment")):
                assert ratio_of(arm) == close(reference_number(outputs[f"{name}_mean"]))
                assert ratio_unit_variance(arm) == close(reference_number(outputs[f"{name}_unit_variance"]))
        else:
            assert_sound_where_gbstats_gives_up(ours, derived_effect)
        checked.add(f"gbstats_frequentist_{kind}")

    assert checked == set(results), f"references not checked: {set(results) - checked}"


@pytest.mark.parametrize("case", CUPED_CASES, ids=case_ids(CUPED_CASES))
def test_cuped_matches_references(case: dict[str, Any]) -> None:
    control, treatment = (cuped_arm_of(v) for v in case["inputs"]["variants"])
    alpha = case["inputs"]["alpha"]
    results = case["results"]
    checked = set(NOT_COMPARABLE & results.keys())

    for prefix, adjusted in (("gbstats_regression_adjusted", True), ("gbstats_unadjusted", False)):
        for kind in ("relative", "absolute"):
            reference = results[f"{prefix}_{kind}"]
            outputs = reference["outputs"]
            result = compare_cuped(control, treatment, alpha, alternative_of(reference["settings"]))
            ours: Comparison = getattr(result.adjusted if adjusted else result.unadjusted, kind)
            if outputs["error_message"] is not None:
                assert_sound_where_gbstats_gives_up(ours)
                checked.add(f"{prefix}_{kind}")
                continue
            assert_matches_gbstats(ours, outputs)
            theta = result.theta if adjusted else 0.0
            if "theta" in outputs:
                assert result.theta == close(reference_number(outputs["theta"]))
            for arm, name in ((control, "control"), (treatment, "treatment")):
                estimate = adjusted_estimate(arm, theta)
                assert estimate.mean == close(reference_number(outputs[f"{name}_mean"]))
                assert estimate.variance == close(reference_number(outputs[f"{name}_unit_variance"]))
                if f"{name}_unadjusted_mean" in outputs:
                    assert estimate.baseline == close(reference_number(outputs[f"{name}_unadjusted_mean"]))
            checked.add(f"{prefix}_{kind}")

    if (reduction := results.get("variance_reduction")) is not None:
        result = compare_cuped(control, treatment, alpha)
        outputs = reduction["outputs"]
        assert result.theta == close(reference_number(outputs["theta_pooled"]))
        for name in ("variance_ratio_relative", "variance_ratio_absolute",
                     "variance_reduction_relative", "variance_reduction_absolute"):
            if name in outputs:
                assert getattr(result, name) == close(reference_number(outputs[name])), name
        checked.add("variance_reduction")

    assert checked == set(results), f"references not checked: {set(results) - checked}"


def bayesian_result(case: dict[str, Any], kind: EffectKind, prior: GaussianPrior | None) -> BayesianEffect:
    control_variant, treatment_variant = case["inputs"]["variants"]
    alpha = case["inputs"]["alpha"]
    if "sum_num" in control_variant:
        pair = bayesian_compare_ratio(ratio_arm_of(control_variant), ratio_arm_of(treatment_variant), alpha, prior)
    elif "sum_y" in control_variant:
        pair = bayesian_compare_cuped(cuped_arm_of(control_variant), cuped_arm_of(treatment_variant), alpha, prior)
    else:
        pair = bayesian_compare(arm_of(control_variant), arm_of(treatment_variant), alpha, prior)
    return pair.relative if kind is EffectKind.RELATIVE else pair.absolute


BAYESIAN_OUTPUTS = {
    "chance_to_win": "chance_to_win",
    "expected": "posterior_mean",
    "uplift_mean": "posterior_mean",
    "uplift_stddev": "posterior_sd",
    "ci_lower": "ci_lower",
    "ci_upper": "ci_upper",
    "risk_control": "risk_control",
    "risk_treatment": "risk_treatment",
}


@pytest.mark.parametrize("case", BAYESIAN_CASES, ids=case_ids(BAYESIAN_CASES))
def test_bayesian_matches_references(case: dict[str, Any]) -> None:
    results = case["results"]
    reference = results["gbstats_bayesian"]
    settings, outputs = reference["settings"], reference["outputs"]
    kind = EffectKind(settings.get("difference_type", "relative"))
    prior_setting = settings.get("prior_effect", {})
    prior = None
    if prior_setting.get("proper"):
        prior = GaussianPrior(
            mean=prior_setting["mean"],
            sd=math.sqrt(prior_setting["variance"]),
            scale=EffectKind(settings.get("prior_type", "relative")),
        )
    ours = bayesian_result(case, kind, prior)

    variants = [arm_of(v) for v in case["inputs"]["variants"] if "n_users" in v]
    if any(isinstance(arm, Proportion) and arm.conversions in (0, arm.n) for arm in variants):
        # Deliberate: at 0% or 100% the Gaussian variance p(1 − p) is 0, so gbstats' posterior claims certainty.
        assert ours.status is not Status.OK and ours.reason
    elif outputs["error_message"] is not None:
        # gbstats gives up with a made-up 50% chance to win; the engine either has a sound posterior or says why not.
        if ours.status is Status.OK:
            assert ours.chance_to_win is not None and 0 <= ours.chance_to_win <= 1
            assert ours.ci_lower is not None and ours.ci_upper is not None and ours.posterior_mean is not None
            assert ours.ci_lower < ours.posterior_mean < ours.ci_upper
        else:
            assert ours.reason and ours.chance_to_win is None
    else:
        assert ours.status is Status.OK, ours.reason
        expected = dict(outputs)
        if settings.get("inverse"):
            # gbstats swaps the two risks for a metric where lower is better; the engine reports both as defined.
            expected["risk_control"], expected["risk_treatment"] = outputs["risk_treatment"], outputs["risk_control"]
        compared = 0
        for name, attribute in BAYESIAN_OUTPUTS.items():
            if name in expected:
                assert getattr(ours, attribute) == close(reference_number(expected[name])), name
                compared += 1
        assert compared >= 6
        if "risk_type" in outputs:
            assert outputs["risk_type"] == kind.value
    assert set(results) == {"gbstats_bayesian"}


def test_reference_file_has_the_effect_estimator_categories() -> None:
    assert len(RATIO_CASES) >= 2
    assert len(CUPED_CASES) >= 3
    assert len(BAYESIAN_CASES) >= 4


# --- sequential, multiple-testing and power cases ------------------------------------------------------------------

SEQUENTIAL_CASES = cases_of("sequential")
MULTI_ARM_CASES = cases_of("multi_arm")
POWER_CASES = cases_of("power")

# gbstats sequential output name -> ConfidenceSequenceResult attribute
SEQUENTIAL_OUTPUTS = {
    "expected": "effect",
    "uplift_mean": "effect",
    "ci_lower": "ci_lower",
    "ci_upper": "ci_upper",
    "p_value": "p_value",
    "uplift_stddev": "std_error",
    "t_statistic": "statistic",
    "rho": "rho",
}


@pytest.mark.parametrize("case", SEQUENTIAL_CASES, ids=case_ids(SEQUENTIAL_CASES))
def test_sequential_matches_references(case: dict[str, Any]) -> None:
    control, treatment = arms(case)
    alpha = case["inputs"]["alpha"]
    results = case["results"]
    checked = set(NOT_COMPARABLE & results.keys())
    for kind in (EffectKind.RELATIVE, EffectKind.ABSOLUTE):
        reference = results[f"gbstats_sequential_{kind.value}"]
        settings, outputs = reference["settings"], reference["outputs"]
        tuning = settings.get("sequential_tuning_parameter_used", settings["sequential_tuning_parameter"])
        ours = confidence_sequence(control, treatment, kind, alpha, tuning_parameter=tuning)
        if outputs["error_message"] is None:
            assert ours.status is Status.OK, ours.reason
            for name, attribute in SEQUENTIAL_OUTPUTS.items():
                if name in outputs:
                    assert getattr(ours, attribute) == close(reference_number(outputs[name])), name
            if "welch_dof" in outputs:
                assert welch_comparison(control, treatment, kind).dof == close(outputs["welch_dof"])
            for arm, name in ((control, "control"), (treatment, "treatment")):
                assert arm.mean == close(outputs[f"{name}_mean"])
                assert arm.variance == close(outputs[f"{name}_unit_variance"])
        else:
            # gbstats gives up (p = 1, [0, 0]); the engine says why instead.
            assert ours.status is not Status.OK and ours.reason
            assert ours.p_value is None and ours.ci_lower is None and ours.ci_upper is None
        checked.add(f"gbstats_sequential_{kind.value}")
    if (fixed := results.get("gbstats_fixed_horizon_relative_for_comparison")) is not None:
        assert_matches_gbstats(compare(control, treatment, alpha).relative, fixed["outputs"])
        checked.add("gbstats_fixed_horizon_relative_for_comparison")
    assert checked == set(results), f"references not checked: {set(results) - checked}"


@pytest.mark.parametrize("case", MULTI_ARM_CASES, ids=case_ids(MULTI_ARM_CASES))
def test_multiple_testing_matches_references(case: dict[str, Any]) -> None:
    results = case["results"]
    checked = set(NOT_COMPARABLE & results.keys())
    corrections = {"statsmodels_holm": Correction.HOLM, "statsmodels_fdr_bh": Correction.BENJAMINI_HOCHBERG}
    for name, correction in corrections.items():
        if (reference := results.get(name)) is None:
            continue
        assert f"method='{correction.value}'" in reference["call"]
        outputs = reference["outputs"]
        raw = [reference_number(p) for p in outputs["p_values_raw"]]
        if "p_values" in case["inputs"]:
            assert raw == pytest.approx(case["inputs"]["p_values"], rel=REL_TOL)
        rejections = {key: value for key, value in outputs.items() if key.startswith("reject_at_")}
        assert rejections
        for key, expected_reject in rejections.items():
            ours = adjust_p_values(raw, correction, float(key.removeprefix("reject_at_")))
            assert list(ours.adjusted) == [close(reference_number(p)) for p in outputs["p_values_adjusted"]]
            assert list(ours.reject) == expected_reject
        checked.add(name)
    assert checked == set(results), f"references not checked: {set(results) - checked}"


@pytest.mark.parametrize("case", POWER_CASES, ids=case_ids(POWER_CASES))
def test_power_matches_references(case: dict[str, Any]) -> None:
    inputs, results = case["inputs"], case["results"]
    assert inputs.get("sides", "two-sided") == "two-sided" and inputs.get("allocation", "1:1") == "1:1"
    checked = set(NOT_COMPARABLE & results.keys())

    def plan(method: PowerMethod) -> Any:
        return sample_size(inputs["baseline_rate"], inputs["relative_mde"], inputs["alpha"], inputs["power"],
                           variants=2, method=method)

    normal, arcsine = plan(PowerMethod.NORMAL), plan(PowerMethod.ARCSINE)
    if (derived := results.get("derived")) is not None:
        outputs = derived["outputs"]
        assert normal.baseline_rate == close(outputs["p1"]) and normal.treatment_rate == close(outputs["p2"])
        assert normal.effect_size == close(abs(outputs["absolute_mde"]))
        checked.add("derived")
    for name, ours in (("statsmodels_normalindpower", arcsine), ("normal_approx_formula", normal)):
        if (reference := results.get(name)) is None:
            continue
        outputs = reference["outputs"]
        assert ours.exact_users_per_variant == close(outputs["n_per_arm"])
        assert ours.users_per_variant == outputs["n_per_arm_ceil"]
        if "cohens_h" in outputs:
            assert ours.effect_size == close(abs(outputs["cohens_h"]))
        checked.add(name)
    assert checked == set(results), f"references not checked: {set(results) - checked}"


def test_reference_file_has_the_sequential_multiple_testing_and_power_categories() -> None:
    assert len(SEQUENTIAL_CASES) >= 3
    assert len(MULTI_ARM_CASES) >= 1
    assert len(POWER_CASES) >= 3
