import pytest

from services.analyzer.stats.decision import DecisionPolicy, MetricReading, Verdict, decide
from services.analyzer.stats.results import Comparison, EffectKind, Method, SrmResult, Status

SRM_OK = SrmResult(status=Status.OK, reason=None, statistic=0.5, p_value=0.48, dof=1)
ENOUGH = {"users_per_variant": [5000, 5000], "days_running": 14.0}


def reading(effect: float, lower: float, upper: float, **options: object) -> MetricReading:
    comparison = Comparison(EffectKind.RELATIVE, Method.WELCH_T, Status.OK, None, effect, lower, upper, 0.01)
    return MetricReading(key="metric", comparison=comparison, **options)  # type: ignore[arg-type]


def test_a_significant_win_without_harmed_guardrails_ships() -> None:
    decision = decide(reading(0.05, 0.01, 0.09), [reading(-0.005, -0.02, 0.01, margin=0.02)], SRM_OK, **ENOUGH)
    assert decision.verdict is Verdict.SHIP


def test_a_guardrail_harmed_beyond_its_margin_blocks_the_win() -> None:
    harmed = reading(-0.05, -0.08, -0.02, margin=0.02)
    assert decide(reading(0.05, 0.01, 0.09), [harmed], SRM_OK, **ENOUGH).verdict is Verdict.ROLL_BACK


def test_a_guardrail_harmed_within_its_margin_does_not_block() -> None:
    mild = reading(-0.01, -0.015, -0.005, margin=0.02)
    assert decide(reading(0.05, 0.01, 0.09), [mild], SRM_OK, **ENOUGH).verdict is Verdict.SHIP


def test_a_significant_loss_rolls_back_and_lower_is_better_flips_direction() -> None:
    assert decide(reading(-0.05, -0.09, -0.01), [], SRM_OK, **ENOUGH).verdict is Verdict.ROLL_BACK
    churn_down = reading(-0.05, -0.09, -0.01, higher_is_better=False)
    assert decide(churn_down, [], SRM_OK, **ENOUGH).verdict is Verdict.SHIP


def test_sample_ratio_mismatch_invalidates_everything() -> None:
    srm = SrmResult(status=Status.MISMATCH, reason="users not split 50/50", statistic=30.0, p_value=1e-8, dof=1)
    assert decide(reading(0.05, 0.01, 0.09), [], srm, **ENOUGH).verdict is Verdict.INVALID


def test_too_early_keeps_running_even_when_significant() -> None:
    decision = decide(reading(0.05, 0.01, 0.09), [], SRM_OK, users_per_variant=[300, 310], days_running=2)
    assert decision.verdict is Verdict.KEEP_RUNNING
    assert len(decision.reasons) == 2


def test_inconclusive_is_neutral_only_when_equivalence_is_proved() -> None:
    assert decide(reading(0.001, -0.01, 0.012), [], SRM_OK, **ENOUGH).verdict is Verdict.KEEP_RUNNING
    tight = reading(0.001, -0.01, 0.012, equivalent=True)
    assert decide(tight, [], SRM_OK, **ENOUGH).verdict is Verdict.PROVED_NEUTRAL


def test_an_undefined_goal_keeps_running_with_its_reason() -> None:
    undefined = Comparison(EffectKind.RELATIVE, Method.WELCH_T, Status.UNDEFINED, "control mean is 0")
    decision = decide(MetricReading("goal", undefined), [], SRM_OK, **ENOUGH)
    assert decision.verdict is Verdict.KEEP_RUNNING
    assert "control mean is 0" in decision.reasons[0]


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError):
        DecisionPolicy(min_days=-1)
    with pytest.raises(ValueError):
        decide(reading(0.0, -0.1, 0.1), [], SRM_OK, users_per_variant=[-1, 3], days_running=1)
