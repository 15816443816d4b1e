"""Sufficient statistics: frozen, mergeable with ``+``, enough to compute every estimate the analyzer reports.

A metric's per-user values y_i (0/1 for binomial, the per-user total for mean) are summarised by
n, Σy and Σy². The sample mean is Σy/n and the unbiased unit variance is (Σy² − (Σy)²/n)/(n − 1).
Ratio metrics (``RatioMoments``) and CUPED (``CovariateMoments``) summarise two values per user, and keep the
sum of their products as well, so that their covariance can be computed.
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


@dataclass(frozen=True, slots=True)
class RatioMoments:
    """A ratio metric Σm/Σd (e.g. revenue m per order d) from per-user numerators m_i and denominators d_i.

    Holds n, Σm, Σm², Σd, Σd² and Σm·d: enough for each part's mean and variance and for their covariance
    (Σm·d − Σm·Σd/n)/(n − 1), which the delta-method variance of the ratio needs.
    """

    n: int
    numerator_sum: float
    numerator_sum_squares: float
    denominator_sum: float
    denominator_sum_squares: float
    numerator_denominator_sum: float

    def __post_init__(self) -> None:
        if self.n < 0 or self.numerator_sum_squares < 0 or self.denominator_sum_squares < 0:
            raise ValueError("n and the sums of squares must be non-negative")

    def __add__(self, other: RatioMoments) -> RatioMoments:
        return RatioMoments(
            self.n + other.n,
            self.numerator_sum + other.numerator_sum,
            self.numerator_sum_squares + other.numerator_sum_squares,
            self.denominator_sum + other.denominator_sum,
            self.denominator_sum_squares + other.denominator_sum_squares,
            self.numerator_denominator_sum + other.numerator_denominator_sum,
        )

    @classmethod
    def zero(cls) -> RatioMoments:
        return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def of(cls, numerators: list[float], denominators: list[float]) -> RatioMoments:
        """The moments of paired per-user values: ``numerators[i]`` and ``denominators[i]`` belong to user i."""
        if len(numerators) != len(denominators):
            raise ValueError("need one numerator and one denominator per user")
        numerator, denominator = SampleMoments.of(numerators), SampleMoments.of(denominators)
        return cls(
            len(numerators),
            numerator.sum,
            numerator.sum_squares,
            denominator.sum,
            denominator.sum_squares,
            float(sum(m * d for m, d in zip(numerators, denominators, strict=True))),
        )

    def numerator(self) -> SampleMoments:
        return SampleMoments(self.n, self.numerator_sum, self.numerator_sum_squares)

    def denominator(self) -> SampleMoments:
        return SampleMoments(self.n, self.denominator_sum, self.denominator_sum_squares)

    @property
    def covariance(self) -> float:
        """Unbiased covariance of m and d per user, (Σm·d − Σm·Σd/n)/(n − 1); NaN below 2 users."""
        if self.n < 2:
            return float("nan")
        return (self.numerator_denominator_sum - self.numerator_sum * self.denominator_sum / self.n) / (self.n - 1)


@dataclass(frozen=True, slots=True)
class CovariateMoments:
    """A metric y after exposure with a covariate x, the same metric before exposure (CUPED).

    Holds n, Σy, Σy², Σx, Σx² and Σx·y: each variable's moments and their covariance (Σx·y − Σx·Σy/n)/(n − 1).
    """

    n: int
    sum: float
    sum_squares: float
    covariate_sum: float
    covariate_sum_squares: float
    sum_covariate_product: float

    def __post_init__(self) -> None:
        if self.n < 0 or self.sum_squares < 0 or self.covariate_sum_squares < 0:
            raise ValueError("n and the sums of squares must be non-negative")

    def __add__(self, other: CovariateMoments) -> CovariateMoments:
        return CovariateMoments(
            self.n + other.n,
            self.sum + other.sum,
            self.sum_squares + other.sum_squares,
            self.covariate_sum + other.covariate_sum,
            self.covariate_sum_squares + other.covariate_sum_squares,
            self.sum_covariate_product + other.sum_covariate_product,
        )

    @classmethod
    def zero(cls) -> CovariateMoments:
        return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def of(cls, outcomes: list[float], covariates: list[float]) -> CovariateMoments:
        """The moments of paired per-user values: ``outcomes[i]`` (y) and ``covariates[i]`` (x) of user i."""
        if len(outcomes) != len(covariates):
            raise ValueError("need one outcome and one covariate per user")
        outcome, covariate = SampleMoments.of(outcomes), SampleMoments.of(covariates)
        return cls(
            len(outcomes),
            outcome.sum,
            outcome.sum_squares,
            covariate.sum,
            covariate.sum_squares,
            float(sum(y * x for y, x in zip(outcomes, covariates, strict=True))),
        )

    def outcome(self) -> SampleMoments:
        """The moments of y alone: what an unadjusted comparison uses."""
        return SampleMoments(self.n, self.sum, self.sum_squares)

    def covariate(self) -> SampleMoments:
        """The moments of x alone."""
        return SampleMoments(self.n, self.covariate_sum, self.covariate_sum_squares)

    @property
    def covariance(self) -> float:
        """Unbiased covariance of y and x per user, (Σx·y − Σx·Σy/n)/(n − 1); NaN below 2 users."""
        if self.n < 2:
            return float("nan")
        return (self.sum_covariate_product - self.sum * self.covariate_sum / self.n) / (self.n - 1)
