"""Multiple-testing corrections of a family of p-values (e.g. every variant × metric comparison of a readout).

Both reproduce statsmodels' ``multipletests`` (methods "holm" and "fdr_bh"). With the m p-values of the family
sorted ascending, p_(1) ≤ … ≤ p_(m):

- **Holm** (1979), step-down, controls the family-wise error rate:
  adjusted p_(i) = min(1, max_{j ≤ i} (m − j + 1)·p_(j)); reject H_(1) … H_(r−1) where r is the first i with
  p_(i) > α/(m − i + 1).
- **Benjamini–Hochberg** (1995), step-up, controls the false discovery rate (independent or positively dependent
  tests): adjusted p_(i) = min(1, min_{j ≥ i} m·p_(j)/j); reject H_(1) … H_(r) where r is the largest i with
  p_(i) ≤ α·i/m.

A ``None`` p-value (a comparison that could not be tested: see its status) is left out of the family — m counts
only the tested comparisons — and its adjusted p-value is ``None`` and it is not rejected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from services.analyzer.stats.frequentist import validate_alpha


class Correction(StrEnum):
    HOLM = "holm"
    """Holm's step-down Bonferroni: family-wise error rate ≤ α."""
    BENJAMINI_HOCHBERG = "fdr_bh"
    """Benjamini–Hochberg step-up: false discovery rate ≤ α."""


@dataclass(frozen=True, slots=True)
class AdjustedPValues:
    """The family's p-values in their original order, adjusted; ``reject[i]`` is whether H_i is rejected at α."""

    correction: Correction
    alpha: float
    raw: tuple[float | None, ...]
    adjusted: tuple[float | None, ...]
    reject: tuple[bool, ...]
    family_size: int
    """m: how many p-values were tested (the ``None`` ones are not)."""


def _validated(p_values: Sequence[float | None]) -> list[float | None]:
    values: list[float | None] = []
    for p in p_values:
        value = None if p is None else float(p)
        if value is not None and not 0 <= value <= 1:  # NaN fails too
            raise ValueError(f"p-values must be in [0, 1] or None, got {p!r}")
        values.append(value)
    return values


def _holm(sorted_p: NDArray[np.float64], alpha: float) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    m = sorted_p.size
    multipliers = np.arange(m, 0, -1, dtype=np.float64)  # m − i + 1 for i = 1 … m
    adjusted = np.minimum(np.maximum.accumulate(sorted_p * multipliers), 1.0)
    above = np.nonzero(sorted_p > alpha / multipliers)[0]
    first_kept = int(above[0]) if above.size else m
    reject = np.arange(m) < first_kept
    return adjusted, reject


def _benjamini_hochberg(sorted_p: NDArray[np.float64], alpha: float) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    m = sorted_p.size
    ranks = np.arange(1, m + 1, dtype=np.float64)
    adjusted = np.minimum(np.minimum.accumulate((sorted_p / (ranks / m))[::-1])[::-1], 1.0)
    below = np.nonzero(sorted_p <= (ranks / m) * alpha)[0]
    last_rejected = int(below[-1]) if below.size else -1
    reject = np.arange(m) <= last_rejected
    return adjusted, reject


def adjust_p_values(
    p_values: Sequence[float | None], correction: Correction | str, alpha: float = 0.05
) -> AdjustedPValues:
    """Adjust a family of p-values by ``correction`` (formulas in the module docstring)."""
    validate_alpha(alpha)
    chosen = Correction(correction)
    values = _validated(p_values)
    tested = [i for i, p in enumerate(values) if p is not None]
    tested_p = np.array([values[i] for i in tested], dtype=np.float64)
    order = np.argsort(tested_p, kind="stable")
    adjusted_all: list[float | None] = [None] * len(values)
    reject_all = [False] * len(values)
    if tested:
        method = _holm if chosen is Correction.HOLM else _benjamini_hochberg
        adjusted_sorted, reject_sorted = method(tested_p[order], alpha)
        for position, index in enumerate(order):
            original = tested[int(index)]
            adjusted_all[original] = float(adjusted_sorted[position])
            reject_all[original] = bool(reject_sorted[position])
    assert all(p is None or math.isfinite(p) for p in adjusted_all)
    return AdjustedPValues(chosen, alpha, tuple(values), tuple(adjusted_all), tuple(reject_all), len(tested))


def holm(p_values: Sequence[float | None], alpha: float = 0.05) -> AdjustedPValues:
    """Holm's step-down adjustment (statsmodels ``multipletests(method="holm")``)."""
    return adjust_p_values(p_values, Correction.HOLM, alpha)


def benjamini_hochberg(p_values: Sequence[float | None], alpha: float = 0.05) -> AdjustedPValues:
    """Benjamini–Hochberg step-up adjustment (statsmodels ``multipletests(method="fdr_bh")``)."""
    return adjust_p_values(p_values, Correction.BENJAMINI_HOCHBERG, alpha)
