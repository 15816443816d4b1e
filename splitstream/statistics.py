"""Sufficient statistics: frozen, mergeable with ``+``, enough to compute every estimate the analyzer reports.

A metric's per-user values y_i (0/1 for binomial, the per-user total for mean) are summarised by
n, Σy and Σy². The sample mean is Σy/n and the unbiased unit variance is (Σy² − (Σy)²/n)/(n − 1).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SampleMoments:
    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        if self.n < 0 or self.sum_squares < 0:
            raise ValueError("n and sum_squares must be non-negative")

    def __add__(self, other: SampleMoments) -> SampleMoments:
        return SampleMoments(self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares)

    @classmethod
    def zero(cls) -> SampleMoments:
        return cls(0, 0.0, 0.0)

    @classmethod
    def of(cls, values: list[float]) -> SampleMoments:
        return cls(len(values), float(sum(values)), float(sum(v * v for v in values)))

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else float("nan")

    @property
    def variance(self) -> float:
        """Unbiased per-unit variance; clipped at 0 because Σy² − (Σy)²/n can round below it."""
        if self.n < 2:
            return float("nan")
        return max(0.0, (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1))


@dataclass(frozen=True, slots=True)
class Proportion:
    """Users exposed and users converted; a 0/1 metric whose Σy² equals Σy."""

    n: int
    conversions: int

    def __post_init__(self) -> None:
        if self.n < 0 or not 0 <= self.conversions <= self.n:
            raise ValueError("need 0 <= conversions <= n")

    def __add__(self, other: Proportion) -> Proportion:
        return Proportion(self.n + other.n, self.conversions + other.conversions)

    @property
    def mean(self) -> float:
        return self.conversions / self.n if self.n else float("nan")

    @property
    def variance(self) -> float:
        """p(1 − p), the convention of gbstats and the reference cases."""
        p = self.mean
        return p * (1.0 - p)

    def moments(self) -> SampleMoments:
        return SampleMoments(self.n, float(self.conversions), float(self.conversions))
