"""Targeting conditions: the comparison rules of splitstream/targeting.py's docstring, one by one."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from splitstream.targeting import Attributes, Condition, Operator, targeted


def _holds(op: str, value: Any, attributes: Attributes, attribute: str = "a") -> bool:
    return Condition.model_validate({"attribute": attribute, "op": op, "value": value}).holds(attributes)


# --- missing attributes --------------------------------------------------------------------------------------------

MISSING_FAILS: list[tuple[str, Any]] = [
    ("eq", "CN"),
    ("in", ["CN", "SG"]),
    ("gt", 1),
    ("gte", 1),
    ("lt", 1),
    ("lte", 1),
    ("version_eq", "1.0"),
    ("version_gt", "1.0"),
    ("version_gte", "1.0"),
    ("version_lt", "1.0"),
    ("version_lte", "1.0"),
    ("exists", True),
]
MISSING_HOLDS: list[tuple[str, Any]] = [("exists", False), ("ne", "CN"), ("not_in", ["CN", "SG"])]


def test_the_tables_cover_every_operator() -> None:
    assert {op for op, _ in MISSING_FAILS + MISSING_HOLDS} == {op.value for op in Operator}


@pytest.mark.parametrize(("op", "value"), MISSING_FAILS)
@pytest.mark.parametrize("attributes", [{}, {"a": None}, {"other": "CN"}])
def test_a_missing_attribute_fails(op: str, value: Any, attributes: Attributes) -> None:
    assert not _holds(op, value, attributes)


@pytest.mark.parametrize(("op", "value"), MISSING_HOLDS)
@pytest.mark.parametrize("attributes", [{}, {"a": None}, {"other": "CN"}])
def test_a_missing_attribute_holds_for_exists_false_ne_and_not_in(
    op: str, value: Any, attributes: Attributes
) -> None:
    assert _holds(op, value, attributes)


@pytest.mark.parametrize("present", ["CN", "", 0, False, 1.5])
def test_exists_sees_any_value_even_a_falsy_one(present: str | int | float | bool) -> None:
    assert _holds("exists", True, {"a": present})
    assert not _holds("exists", False, {"a": present})


# --- equality and lists --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "attribute", "expected"),
    [
        ("CN", "CN", True),
        ("CN", "cn", False),  # text compares exactly
        ("CN", "SG", False),
        (3, "3", True),  # numbers numerically, whatever their type
        ("3", 3, True),
        (3, 3.0, True),
        ("3.0", "3", True),
        (3, "3.5", False),
        (3, "three", False),
        (True, "true", True),  # booleans as true / false: query strings carry them as text
        ("true", True, True),
        (False, "false", True),
        (True, "false", False),
        (True, False, False),
        (True, "1", False),  # a boolean is not the number 1
        (1, True, False),
    ],
)
def test_eq_and_ne(value: Any, attribute: str | int | float | bool, expected: bool) -> None:
    assert _holds("eq", value, {"a": attribute}) is expected
    assert _holds("ne", value, {"a": attribute}) is not expected


@pytest.mark.parametrize(
    ("options", "attribute", "expected"),
    [
        (["CN", "SG"], "SG", True),
        (["CN", "SG"], "US", False),
        ([1, 2, 3], "2", True),
        (["1", "2"], 2.0, True),
        ([True], "true", True),
        (["false"], False, True),
        (["CN", 7, True], "7", True),
        (["CN"], "C", False),  # membership, not a substring test
    ],
)
def test_in_and_not_in(options: list[Any], attribute: str | int | float | bool, expected: bool) -> None:
    assert _holds("in", options, {"a": attribute}) is expected
    assert _holds("not_in", options, {"a": attribute}) is not expected


# --- numeric comparisons -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "gt", "gte", "lt", "lte"),
    [
        (5, True, True, False, False),
        (3, False, True, False, True),
        ("3", False, True, False, True),
        (2.5, False, False, True, True),
        ("10", True, True, False, False),  # numerically: "10" > 3, though "10" < "3" as text
        (-1, False, False, True, True),
    ],
)
def test_numeric_operators_compare_numbers(
    attribute: str | int | float, gt: bool, gte: bool, lt: bool, lte: bool
) -> None:
    results = [_holds(op, 3, {"a": attribute}) for op in ("gt", "gte", "lt", "lte")]
    assert results == [gt, gte, lt, lte]


def test_a_numeric_threshold_may_be_given_as_text() -> None:
    assert _holds("gte", "18", {"a": 21})
    assert not _holds("gte", "18", {"a": "17"})


@pytest.mark.parametrize("attribute", ["abc", "", "nan", "inf", True, False, float("nan"), float("inf")])
@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_a_non_numeric_attribute_fails_numeric_operators(op: str, attribute: str | float | bool) -> None:
    assert not _holds(op, 0, {"a": attribute})


# --- versions ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value", "relation"),
    [
        ("1.10.0", "1.9.2", ">"),  # part by part as integers, not as text
        ("1.2", "1.2.0", "="),  # missing parts are 0
        ("1.2.0.0", "1.2", "="),
        ("1.2", "1.2.1", "<"),
        ("1.0", "1.0.1", "<"),
        ("v2.0.0", "2.0", "="),  # a leading v is ignored
        ("2.0.0", "v2.0.1", "<"),
        ("1.2.0-beta", "1.2.0", "<"),  # a pre-release sorts before its release
        ("1.2.0-beta", "1.1.9", ">"),  # and after the release before it
        ("1.2.0-rc.1", "1.2.0-rc.1", "="),
        ("2", "10", "<"),
        ("10.0.0", "9.99.99", ">"),
    ],
)
def test_version_operators(attribute: str, value: str, relation: str) -> None:
    expected = {
        "version_eq": relation == "=",
        "version_gt": relation == ">",
        "version_gte": relation in {">", "="},
        "version_lt": relation == "<",
        "version_lte": relation in {"<", "="},
    }
    assert {op: _holds(op, value, {"a": attribute}) for op in expected} == expected


def test_a_numeric_attribute_is_read_as_a_version() -> None:
    assert _holds("version_gte", "2.0", {"a": 2})
    assert _holds("version_lt", "2.0", {"a": 1.5})


@pytest.mark.parametrize("attribute", ["latest", "", "1..2", "1.2.x", "v", "1.2.0-", True])
@pytest.mark.parametrize("op", ["version_eq", "version_gt", "version_gte", "version_lt", "version_lte"])
def test_an_unparsable_version_fails(op: str, attribute: str | bool) -> None:
    assert not _holds(op, "1.0.0", {"a": attribute})


# --- all conditions ------------------------------------------------------------------------------------------------


def test_targeted_needs_every_condition() -> None:
    conditions = [
        Condition.model_validate({"attribute": "country", "op": "in", "value": ["CN", "SG"]}),
        Condition.model_validate({"attribute": "app_version", "op": "version_gte", "value": "2.14.0"}),
        Condition.model_validate({"attribute": "is_new", "op": "eq", "value": True}),
    ]
    user = {"country": "SG", "app_version": "2.14.1", "is_new": "true"}
    assert targeted(conditions, user)
    assert not targeted(conditions, user | {"country": "US"})
    assert not targeted(conditions, user | {"app_version": "2.9.9"})
    assert not targeted(conditions, user | {"is_new": "false"})
    assert not targeted(conditions, {"country": "SG", "app_version": "2.14.1"})
    assert targeted([], {})


# --- validation ----------------------------------------------------------------------------------------------------


def _error_locations(data: dict[str, Any]) -> list[tuple[int | str, ...]]:
    with pytest.raises(ValidationError) as raised:
        Condition.model_validate(data)
    return [error["loc"] for error in raised.value.errors()]


@pytest.mark.parametrize("op", ["bogus", "EQ", "", "contains", 3, None])
def test_an_unknown_operator_is_reported_at_op(op: Any) -> None:
    assert _error_locations({"attribute": "a", "op": op, "value": "x"}) == [("op",)]


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("in", "CN"),  # in / not_in need a non-empty list
        ("in", []),
        ("not_in", "CN"),
        ("not_in", []),
        ("eq", ["CN"]),  # the others a single value
        ("ne", ["CN"]),
        ("gt", [1]),
        ("exists", "true"),  # exists a boolean
        ("exists", 1),
        ("gt", "abc"),  # numeric operators a finite number
        ("lte", True),
        ("gte", "nan"),
        ("version_gt", "x.y"),  # version operators a version string
        ("version_eq", 2),
        ("version_lte", "1.2.x"),
    ],
)
def test_a_value_that_does_not_fit_the_operator_is_reported_at_value(op: str, value: Any) -> None:
    assert _error_locations({"attribute": "a", "op": op, "value": value}) == [("value",)]


@pytest.mark.parametrize("attribute", ["", "1abc", "has space", "a" * 65])
def test_an_invalid_attribute_name_is_refused(attribute: str) -> None:
    assert _error_locations({"attribute": attribute, "op": "eq", "value": "x"}) == [("attribute",)]


def test_unknown_fields_are_refused() -> None:
    assert _error_locations({"attribute": "a", "op": "eq", "value": "x", "negate": True}) == [("negate",)]


def test_valid_conditions_parse() -> None:
    for op, value in MISSING_FAILS + MISSING_HOLDS:
        assert Condition.model_validate({"attribute": "a", "op": op, "value": value}).op == Operator(op)
