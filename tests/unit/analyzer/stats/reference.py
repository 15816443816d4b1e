"""Loads the golden cases (gbstats, statsmodels, scipy outputs) copied from the shared reference into data/."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

from splitstream.statistics import CovariateMoments, Proportion, RatioMoments, SampleMoments

CASES_FILE = Path(__file__).parent / "data" / "stats-cases.json"


@cache
def all_cases() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(CASES_FILE.read_text()))


def cases_of(*categories: str) -> list[dict[str, Any]]:
    return [case for case in all_cases() if case["category"] in categories]


def case_ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["id"] for case in cases]


def arm_of(variant: dict[str, Any]) -> Proportion | SampleMoments:
    if "n_users" in variant:
        return Proportion(n=variant["n_users"], conversions=variant["n_conversions"])
    return SampleMoments(n=variant["n"], sum=variant["sum"], sum_squares=variant["sum_squares"])


def ratio_arm_of(variant: dict[str, Any]) -> RatioMoments:
    return RatioMoments(
        n=variant["n"],
        numerator_sum=variant["sum_num"],
        numerator_sum_squares=variant["sum_num_sq"],
        denominator_sum=variant["sum_den"],
        denominator_sum_squares=variant["sum_den_sq"],
        numerator_denominator_sum=variant["sum_num_den"],
    )


def cuped_arm_of(variant: dict[str, Any]) -> CovariateMoments:
    return CovariateMoments(
        n=variant["n"],
        sum=variant["sum_y"],
        sum_squares=variant["sum_y_sq"],
        covariate_sum=variant["sum_x"],
        covariate_sum_squares=variant["sum_x_sq"],
        sum_covariate_product=variant["sum_xy"],
    )


def reference_number(value: Any) -> float | None:
    """The file's conventions: null is NaN/not applicable, "inf"/"-inf" are infinities."""
    if value is None:
        return None
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return float(value)
