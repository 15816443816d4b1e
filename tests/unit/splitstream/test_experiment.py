import pytest
from pydantic import ValidationError

from splitstream.experiment import ExperimentSpec, Metric, MetricType


def _spec(**overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "key": "title-test",
        "variants": [{"key": "control", "weight": 1}, {"key": "treatment", "weight": 1}],
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
        {"variants": [{"key": "a", "weight": 1}, {"key": "a", "weight": 1}]},
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
