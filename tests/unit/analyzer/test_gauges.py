"""Results → gauge samples, without Redis: one series per defined number, none where the results say None."""

from __future__ import annotations

from prometheus_client import Gauge

from services.analyzer.gauges import (
    CHANCE_TO_WIN,
    EFFECT,
    EFFECT_CI_LOWER,
    EFFECT_CI_UPPER,
    HOLDOUT_CI_LOWER,
    HOLDOUT_CI_UPPER,
    HOLDOUT_EFFECT,
    HOLDOUT_P_VALUE,
    HOLDOUT_SRM_P_VALUE,
    HOLDOUT_USERS,
    METRIC_MEAN,
    P_VALUE,
    SRM_P_VALUE,
    USERS,
    Sample,
    samples_of,
)
from services.analyzer.schemas import (
    ComparisonOut,
    ExperimentResults,
    HoldoutResults,
    MetricResultsOut,
    MetricVariantOut,
    SrmOut,
    VariantOut,
)
from services.analyzer.stats import Comparison, EffectKind, Method, Status
from splitstream.experiment import (
    HOLDOUT_ARM,
    AnalysisMethod,
    ExperimentStatus,
    MetricRole,
    MetricType,
    PValueCorrection,
)


def _comparison(variant: str, effect: float | None, p_value: float | None, chance: float | None) -> ComparisonOut:
    defined = effect is not None
    relative = Comparison(
        kind=EffectKind.RELATIVE, method=Method.WELCH_T, status=Status.OK if defined else Status.UNDEFINED,
        reason=None if defined else "control mean is 0", effect=effect,
        ci_lower=None if effect is None else effect - 0.1, ci_upper=None if effect is None else effect + 0.1,
        p_value=p_value,
    )
    absolute = Comparison(kind=EffectKind.ABSOLUTE, method=Method.WELCH_T, status=Status.OK, reason=None, effect=0.5)
    return ComparisonOut.of_pair(variant, "control", relative, absolute, chance_to_win=chance)


def _results(
    comparisons: list[ComparisonOut], srm_p_value: float | None, means: tuple[float | None, ...]
) -> ExperimentResults:
    keys = ["control", *(c.variant for c in comparisons)]
    return ExperimentResults(
        experiment="checkout", status=ExperimentStatus.RUNNING, phase=1, alpha=0.05, method=AnalysisMethod.FREQUENTIST,
        correction=PValueCorrection.NONE,
        variants=[VariantOut(key=key, users=100 + i, weight=1.0) for i, key in enumerate(keys)],
        srm=SrmOut(p_value=srm_p_value, statistic=None, dof=None, status="ok", reason=None),
        metrics=[MetricResultsOut(
            key="revenue", type=MetricType.MEAN, event="purchase", role=MetricRole.SECONDARY,
            variants=[MetricVariantOut(key=key, n=100, sum=1.0, mean=mean, variance=None)
                      for key, mean in zip(keys, means, strict=True)],
            comparisons=comparisons,
        )],
        decisions=[],
    )


def _by_series(samples: list[Sample]) -> dict[tuple[Gauge, tuple[str, ...]], float]:
    series = {(s.gauge, s.labels): s.value for s in samples}
    assert len(series) == len(samples), "a series is set twice"
    return series


def test_every_defined_number_is_one_series() -> None:
    results = _results([_comparison("b", 0.12, 0.03, None)], srm_p_value=0.7, means=(2.0, 2.24))

    series = _by_series(samples_of(results))

    cell = ("checkout", "b", "revenue")
    assert series == {
        (SRM_P_VALUE, ("checkout",)): 0.7,
        (USERS, ("checkout", "control")): 100.0,
        (USERS, ("checkout", "b")): 101.0,
        (METRIC_MEAN, ("checkout", "control", "revenue")): 2.0,
        (METRIC_MEAN, ("checkout", "b", "revenue")): 2.24,
        (EFFECT, cell): results.metrics[0].comparisons[0].effect,
        (EFFECT_CI_LOWER, cell): results.metrics[0].comparisons[0].ci_lower,
        (EFFECT_CI_UPPER, cell): results.metrics[0].comparisons[0].ci_upper,
        (P_VALUE, cell): 0.03,
    }


def test_none_values_have_no_series() -> None:
    results = _results(
        [_comparison("b", None, None, None), _comparison("c", 0.2, 0.01, None)], srm_p_value=None,
        means=(0.0, None, 3.0),
    )

    series = _by_series(samples_of(results))

    names_of_b = {name for name, labels in series if labels[:2] == ("checkout", "b")}
    assert names_of_b == {USERS}, "b's undefined lift and mean must leave no series"
    assert (EFFECT, ("checkout", "c", "revenue")) in series
    assert (SRM_P_VALUE, ("checkout",)) not in series
    assert (METRIC_MEAN, ("checkout", "control", "revenue")) in series, "a mean of 0 is a value, not absent"


def test_chance_to_win_only_where_the_method_gives_it() -> None:
    bayesian = _results([_comparison("b", 0.1, None, 0.93)], srm_p_value=0.5, means=(1.0, 1.1))
    frequentist = _results([_comparison("b", 0.1, 0.04, None)], srm_p_value=0.5, means=(1.0, 1.1))

    cell = (CHANCE_TO_WIN, ("checkout", "b", "revenue"))
    assert _by_series(samples_of(bayesian))[cell] == 0.93
    assert (P_VALUE, ("checkout", "b", "revenue")) not in _by_series(samples_of(bayesian))
    assert cell not in _by_series(samples_of(frequentist))


def test_the_campaign_against_its_holdout_is_a_family_of_its_own() -> None:
    main = _results([_comparison("b", 0.1, 0.04, None)], srm_p_value=0.5, means=(1.0, 1.1))
    against_holdout = MetricResultsOut(
        key="revenue", type=MetricType.MEAN, event="purchase", role=MetricRole.SECONDARY,
        variants=[MetricVariantOut(key=key, n=50, sum=1.0, mean=0.9, variance=None)
                  for key in (HOLDOUT_ARM, "control", "b", "(all variants)")],
        comparisons=[_comparison("control", 0.3, 0.002, None), _comparison("b", 0.4, 0.001, None),
                     _comparison("(all variants)", 0.35, None, None)],
    )
    srm = SrmOut(p_value=0.42, statistic=None, dof=None, status="ok", reason=None)
    results = main.model_copy(update={"holdout": HoldoutResults(
        holdouts=["push"], expected_share=0.1, users=50, srm=srm, metrics=[against_holdout],
    )})

    series = _by_series(samples_of(results))

    assert series[(HOLDOUT_USERS, ("checkout",))] == 50.0
    assert series[(HOLDOUT_SRM_P_VALUE, ("checkout",))] == 0.42
    pooled = ("checkout", "(all variants)", "revenue")
    assert series[(HOLDOUT_EFFECT, pooled)] == 0.35
    assert series[(HOLDOUT_CI_LOWER, pooled)] == against_holdout.comparisons[2].ci_lower
    assert series[(HOLDOUT_CI_UPPER, pooled)] == against_holdout.comparisons[2].ci_upper
    assert (HOLDOUT_P_VALUE, pooled) not in series  # no p-value, no series
    assert series[(HOLDOUT_P_VALUE, ("checkout", "b", "revenue"))] == 0.001
    # The variants' own lifts are untouched by the holdout family.
    assert series[(EFFECT, ("checkout", "b", "revenue"))] == main.metrics[0].comparisons[0].effect
    assert not [labels for gauge, labels in series if gauge is EFFECT and labels[1] == "(all variants)"]
    assert (HOLDOUT_USERS, ("checkout",)) not in _by_series(samples_of(main))
