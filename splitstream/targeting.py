"""Targeting: which users an experiment is for, as conditions on the attributes the caller sends.

All conditions of an experiment must hold. A missing attribute fails every condition except ``exists: false``,
``ne`` and ``not_in`` (a user without a country is not "in CN", and is "not in CN"). Values compare as follows:
- ``eq`` / ``ne`` / ``in`` / ``not_in``: numbers numerically (``"3"`` equals ``3``); anything else by its text,
  booleans as ``true`` / ``false`` (query strings carry ``is_new=true`` as text);
- ``gt`` / ``gte`` / ``lt`` / ``lte``: numerically; an attribute that is not a number fails;
- ``version_*``: dotted versions compared part by part as integers (``1.10.0 > 1.9.2``; missing parts are 0; a
  leading ``v`` is ignored; a pre-release ``1.2.0-beta`` sorts before ``1.2.0``); an unparsable attribute fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

AttributeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")]
Scalar = str | int | float | bool
Attributes = Mapping[str, Scalar | None]
Predicate = Callable[[Attributes], bool]


def _scalar_or_null(value: object) -> object:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError("an attribute is a string, a number, a boolean or null")
    return value


AttributeValue = Annotated[Scalar | None, BeforeValidator(_scalar_or_null)]
"""One attribute's value on the wire: lists and objects are refused with one clear error."""

_VERSION = re.compile(r"^v?(\d{1,9}(?:\.\d{1,9}){0,5})(?:-([0-9A-Za-z.\-]+))?$")


class Operator(StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    VERSION_EQ = "version_eq"
    VERSION_GT = "version_gt"
    VERSION_GTE = "version_gte"
    VERSION_LT = "version_lt"
    VERSION_LTE = "version_lte"
    EXISTS = "exists"


_NUMERIC = {Operator.GT, Operator.GTE, Operator.LT, Operator.LTE}
_VERSIONED = {Operator.VERSION_EQ, Operator.VERSION_GT, Operator.VERSION_GTE, Operator.VERSION_LT, Operator.VERSION_LTE}
_LISTED = {Operator.IN, Operator.NOT_IN}


def parse_version(text: str) -> tuple[tuple[int, ...], int, str] | None:
    """A sortable form of a dotted version, or None. Trailing zero parts are dropped so 1.2 == 1.2.0."""
    found = _VERSION.match(text.strip())
    if found is None:
        return None
    parts = [int(part) for part in found.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    pre_release = found.group(2)
    # A release sorts after its pre-releases: (parts, 1, "") > (parts, 0, "beta").
    return (tuple(parts), 0 if pre_release else 1, pre_release or "")


def _number(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def _text(value: object) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Condition(BaseModel):
    """``{"attribute": "country", "op": "in", "value": ["CN", "SG"]}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attribute: AttributeName
    op: Operator
    value: Scalar | list[Scalar] = Field(description="a list for in / not_in, a boolean for exists")

    # A field validator so that the error names ``value``; ``op`` is declared first, so it is in ``info.data``
    # unless it was itself invalid (then that error is the one to report).
    @field_validator("value")
    @classmethod
    def _value_fits_operator(cls, value: Scalar | list[Scalar], info: ValidationInfo) -> Scalar | list[Scalar]:
        op = info.data.get("op")
        if op is None:
            return value
        if op in _LISTED:
            if not isinstance(value, list) or not value:
                raise ValueError(f"{op.value} needs a non-empty list as value")
        elif isinstance(value, list):
            raise ValueError(f"{op.value} needs a single value, not a list")
        elif op is Operator.EXISTS and not isinstance(value, bool):
            raise ValueError("exists needs true or false as value")
        elif op in _NUMERIC and _number(value) is None:
            raise ValueError(f"{op.value} needs a finite number as value")
        elif op in _VERSIONED and (not isinstance(value, str) or parse_version(value) is None):
            raise ValueError(f"{op.value} needs a version such as '2.14.0' as value")
        return value

    def holds(self, attributes: Attributes) -> bool:
        return self.compile()(attributes)

    def compile(self) -> Predicate:
        """A fast test of this condition (the evaluation compiles each condition once per catalog)."""
        name, op, value = self.attribute, self.op, self.value
        if op is Operator.EXISTS:
            wanted = value is True
            return lambda attributes: (attributes.get(name) is not None) is wanted
        if op in _LISTED or op in {Operator.EQ, Operator.NE}:
            member = _membership(value if isinstance(value, list) else [value])
            if op in {Operator.EQ, Operator.IN}:
                return lambda attributes: (present := attributes.get(name)) is not None and member(present)
            return lambda attributes: (present := attributes.get(name)) is None or not member(present)
        assert not isinstance(value, list)  # the validator allows lists only for in / not_in
        if op in _NUMERIC:
            bound, relation = _number(value), op.value
            return lambda attributes: _compare(_number(attributes.get(name)), bound, relation)
        version, relation = parse_version(_text(value)), op.value.removeprefix("version_")
        return lambda attributes: (present := attributes.get(name)) is not None and _compare(
            parse_version(_text(present)), version, relation
        )


def _membership(options: list[Scalar]) -> Callable[[Scalar], bool]:
    """Whether a value equals one of ``options`` in the sense of the module docstring. Text equality implies numeric
    equality for two numbers, so "its text is an option's text, or its number is an option's number" is the same
    test as comparing pairwise, at the cost of two set lookups."""
    texts = frozenset(_text(option) for option in options)
    numbers = frozenset(number for option in options if (number := _number(option)) is not None)
    if not numbers:
        return lambda present: _text(present) in texts
    return lambda present: _text(present) in texts or _number(present) in numbers


def _compare(left: Any, right: Any, relation: str) -> bool:
    if left is None or right is None:
        return False
    match relation:
        case "eq":
            return bool(left == right)
        case "gt":
            return bool(left > right)
        case "gte":
            return bool(left >= right)
        case "lt":
            return bool(left < right)
        case "lte":
            return bool(left <= right)
    raise ValueError(f"unknown relation {relation!r}")


def targeted(conditions: list[Condition], attributes: Attributes) -> bool:
    return all(condition.holds(attributes) for condition in conditions)
