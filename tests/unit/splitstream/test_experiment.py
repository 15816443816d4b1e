from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from splitstream.experiment import Experiment, ExperimentSpec, Metric, MetricType


def _spec(**overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "key": "title-test",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        "metrics": [{"key": "clicks", "type": "binomial", "event": "click"}],
    }
    return spec | overrides


def test_a_valid_spec_parses() -> None:
    spec = ExperimentSpec.model_validate(_spec())
    assert [v.key for v in spec.variants] == ["control", "treatment"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"variants": [{"key": "control", "weight": 1}]},
        {"variants": [{"key": "a", "weight": 0.5}, {"key": "a", "weight": 0.5}]},
        {"variants": [{"key": "a", "weight": 0}, {"key": "b", "weight": 1}]},
        {"metrics": [{"key": "m", "type": "median", "event": "click"}]},
        {"metrics": [{"key": "m", "type": "mean", "event": "x"}, {"key": "m", "type": "mean", "event": "y"}]},
        {"key": "has:colon"},
    ],
)
def test_invalid_specs_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExperimentSpec.model_validate(_spec(**overrides))


def test_a_metric_has_no_conversion_window_unless_given_a_positive_one() -> None:
    assert Metric(key="m", type=MetricType.BINOMIAL, event="buy").conversion_window_hours is None
    half_hour = Metric(key="m", type=MetricType.MEAN, event="buy", conversion_window_hours=0.5)
    assert half_hour.conversion_window_hours == 0.5

    for hours in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValidationError, match="conversion_window_hours"):
            Metric(key="m", type=MetricType.BINOMIAL, event="buy", conversion_window_hours=hours)


def _error_locations(data: dict[str, object]) -> list[tuple[int | str, ...]]:
    with pytest.raises(ValidationError) as raised:
        ExperimentSpec.model_validate(data)
    return [error["loc"] for error in raised.value.errors()]


@pytest.mark.parametrize(
    "weights",
    [
        [0.5, 0.5],
        [0.7, 0.2, 0.1],  # 0.7 + 0.2 + 0.1 is 0.9999999999999999 in float addition
        [1 / 3, 1 / 3, 1 / 3],
        [0.25, 0.25, 0.25, 0.25],
        [0.5, 0.5 + 5e-10],  # inside the 1e-9 tolerance
    ],
)
def test_weights_summing_to_one_are_accepted(weights: list[float]) -> None:
    spec = ExperimentSpec.model_validate(_spec(variants=[{"key": f"v{i}", "weight": w} for i, w in enumerate(weights)]))
    assert [variant.weight for variant in spec.variants] == weights


@pytest.mark.parametrize("weights", [[0.5, 0.4], [0.5, 0.5 + 5e-9], [0.6, 0.6], [1, 1], [0.2, 0.2, 0.2]])
def test_weights_not_summing_to_one_are_reported_at_variants(weights: list[float]) -> None:
    variants = [{"key": f"v{i}", "weight": w} for i, w in enumerate(weights)]
    assert _error_locations(_spec(variants=variants)) == [("variants",)]


@pytest.mark.parametrize("count", [2, 3, 4, 7])
def test_omitted_weights_split_equally(count: int) -> None:
    spec = ExperimentSpec.model_validate(_spec(variants=[{"key": f"v{i}"} for i in range(count)]))
    assert [variant.weight for variant in spec.variants] == [1 / count] * count


def test_some_omitted_weights_are_an_error() -> None:
    variants = [{"key": "a", "weight": 0.5}, {"key": "b"}, {"key": "c"}]
    assert _error_locations(_spec(variants=variants)) == [("variants",)]


def test_duplicate_variant_keys_are_reported_at_variants() -> None:
    assert _error_locations(_spec(variants=[{"key": "a"}, {"key": "b"}, {"key": "a"}])) == [("variants",)]


@pytest.mark.parametrize("coverage", [-0.1, 1.01, float("nan"), float("inf")])
def test_coverage_outside_zero_one_is_reported_at_coverage(coverage: float) -> None:
    assert _error_locations(_spec(coverage=coverage)) == [("coverage",)]


@pytest.mark.parametrize("coverage", [0.0, 0.5, 1.0])
def test_coverage_inside_zero_one_is_accepted(coverage: float) -> None:
    assert ExperimentSpec.model_validate(_spec(coverage=coverage)).coverage == coverage


def test_forced_must_name_a_variant() -> None:
    assert _error_locations(_spec(forced={"qa-1": "treatment", "qa-2": "nope"})) == [("forced",)]
    spec = ExperimentSpec.model_validate(_spec(forced={"qa-1": "treatment"}))
    assert spec.forced == {"qa-1": "treatment"}


START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "times",
    [
        [START + timedelta(days=2), START + timedelta(days=1)],
        [START, START],  # two steps at the same time: which one is in force would be ambiguous
        [START, START + timedelta(days=2), START + timedelta(days=1)],
    ],
)
def test_a_ramp_out_of_time_order_is_reported_at_ramp(times: list[datetime]) -> None:
    ramp = [{"at": at, "coverage": 0.1 * (i + 1)} for i, at in enumerate(times)]
    assert _error_locations(_spec(ramp=ramp)) == [("ramp",)]


def test_a_ramp_step_needs_an_aware_time() -> None:
    locations = _error_locations(_spec(ramp=[{"at": "2026-03-01T00:00:00", "coverage": 0.1}]))
    assert locations == [("ramp", 0, "at")]


def test_a_bad_targeting_operator_is_reported_at_its_condition() -> None:
    targeting = [
        {"attribute": "country", "op": "in", "value": ["SG"]},
        {"attribute": "country", "op": "like", "value": "S%"},
    ]
    assert _error_locations(_spec(targeting=targeting)) == [("targeting", 1, "op")]
    assert _error_locations(_spec(targeting=targeting[::-1])) == [("targeting", 0, "op")]


def _experiment(**fields: Any) -> Experiment:
    return Experiment.model_validate(_spec(**fields) | {"salt": "s", "created_at": START})


def test_coverage_at_follows_the_last_step_at_or_before_now() -> None:
    day = timedelta(days=1)
    experiment = _experiment(
        coverage=0.05,
        ramp=[{"at": START + day, "coverage": 0.2}, {"at": START + 3 * day, "coverage": 0.5}],
    )
    assert experiment.coverage_at(START) == 0.05
    assert experiment.coverage_at(START + day - timedelta(microseconds=1)) == 0.05
    assert experiment.coverage_at(START + day) == 0.2
    assert experiment.coverage_at(START + 2 * day) == 0.2
    assert experiment.coverage_at(START + 3 * day) == 0.5
    assert experiment.coverage_at(START + 300 * day) == 0.5
    assert _experiment(coverage=0.3).coverage_at(START + 300 * day) == 0.3


def test_an_experiment_has_equal_weights_and_its_first_variant_as_control() -> None:
    experiment = _experiment(variants=[{"key": "control"}, {"key": "b"}, {"key": "c"}])
    assert experiment.weights == [1 / 3, 1 / 3, 1 / 3]
    assert experiment.control.key == "control"
    assert experiment.variant_keys() == ["control", "b", "c"]
    assert experiment.variant("b") is experiment.variants[1]
    assert experiment.variant("nope") is None


def test_spec_round_trips() -> None:
    data = _spec(
        name="Checkout title",
        kind="pricing",
        variants=[{"key": "control", "payload": {"price": 9.9}}, {"key": "cheaper", "payload": {"price": 7.9}}],
        coverage=0.4,
        unit="device_id",
        targeting=[{"attribute": "country", "op": "in", "value": ["SG", "CN"]}],
        layer={"key": "checkout", "share": 0.3},
        holdouts=["campaign-q4"],
        forced={"qa-1": "cheaper"},
        ramp=[{"at": START, "coverage": 0.1}],
        metrics=[{"key": "revenue", "type": "mean", "event": "purchase", "role": "goal", "cap": 500}],
        analysis={"method": "sequential", "planned_users_per_variant": 20000},
    )
    spec = ExperimentSpec.model_validate(data)
    experiment = Experiment.model_validate(
        spec.model_dump() | {"salt": "s", "created_at": START, "status": "running", "phase": 2}
    )
    assert type(experiment.spec()) is ExperimentSpec
    assert experiment.spec() == spec
    assert experiment.spec().model_dump() == spec.model_dump()
    assert ExperimentSpec.model_validate(experiment.spec().model_dump(mode="json")) == spec
