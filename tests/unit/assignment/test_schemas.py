from typing import Any

import pytest
from pydantic import ValidationError

from services.assignment.schemas import ExperimentCreate
from splitstream.experiment import ExperimentSpec

VARIANTS = [{"key": "control"}, {"key": "treatment"}]


def _locations(body: dict[str, Any]) -> list[tuple[int | str, ...]]:
    with pytest.raises(ValidationError) as caught:
        ExperimentCreate.model_validate(body)
    return [tuple(error["loc"]) for error in caught.value.errors()]


def test_duplicate_variant_keys_name_the_list_and_both_positions() -> None:
    body = {"key": "e", "variants": [*VARIANTS, {"key": "control"}]}
    with pytest.raises(ValidationError, match=r"duplicate key 'control' at items 0 and 2"):
        ExperimentCreate.model_validate(body)
    assert _locations(body) == [("variants",)]


def test_duplicate_metric_keys_name_the_metrics() -> None:
    metric = {"key": "m", "type": "binomial", "event": "buy"}
    assert _locations({"key": "e", "variants": VARIANTS, "metrics": [metric, metric]}) == [("metrics",)]


def test_salt_must_be_non_empty_and_free_of_control_characters() -> None:
    assert _locations({"key": "e", "variants": VARIANTS, "salt": ""}) == [("salt",)]
    assert _locations({"key": "e", "variants": VARIANTS, "salt": "a\tb"}) == [("salt",)]


def test_spec_drops_the_salt_and_keeps_everything_else() -> None:
    body = ExperimentCreate.model_validate(
        {"key": "e", "variants": VARIANTS, "metrics": [{"key": "m", "type": "mean", "event": "buy"}], "salt": "s"}
    )
    spec = body.spec()
    assert type(spec) is ExperimentSpec
    assert spec.model_dump() == {k: v for k, v in body.model_dump().items() if k != "salt"}
