import pytest
from pydantic import ValidationError

from splitstream.experiment import ExperimentSpec


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
