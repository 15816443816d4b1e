"""Wire models of ``/v1/stats/*``. Shapes are a published contract: keep field names exactly."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, ValidationInfo, field_validator

from services.analyzer.schemas import Number

Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Alpha = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BinomialVariant(_Strict):
    name: str = Field(min_length=1)
    n: NonNegativeInt
    conversions: NonNegativeInt

    # Field validators that read earlier fields, so the error names the field at fault rather than the body.
    @field_validator("conversions")
    @classmethod
    def _within_users(cls, conversions: int, info: ValidationInfo) -> int:
        n = info.data.get("n")
        if n is not None and conversions > n:
            raise ValueError(f"conversions ({conversions}) must not exceed n ({n})")
        return conversions


class MeanVariant(_Strict):
    name: str = Field(min_length=1)
    n: NonNegativeInt
    sum: Finite
    sum_squares: NonNegativeFloat
    covariate_sum: Finite | None = None
    covariate_sum_squares: NonNegativeFloat | None = None
    sum_covariate_product: Finite | None = None


class RatioVariant(_Strict):
    name: str = Field(min_length=1)
    n: NonNegativeInt
    numerator_sum: Finite
    numerator_sum_squares: NonNegativeFloat
    denominator_sum: Finite
    denominator_sum_squares: NonNegativeFloat
    numerator_denominator_sum: Finite


VARIANT_MODELS: dict[str, type[BinomialVariant | MeanVariant | RatioVariant]] = {
    "binomial": BinomialVariant,
    "mean": MeanVariant,
    "ratio": RatioVariant,
}


class Prior(_Strict):
    mean: Finite = 0.0
    sd: float = Field(gt=0, allow_inf_nan=False)


class CompareRequest(_Strict):
    """``variants`` are checked against ``metric_type`` by the service, which names ``variants.<i>.<field>``."""

    metric_type: Literal["binomial", "mean", "ratio"]
    method: Literal["frequentist", "bayesian", "sequential"] = "frequentist"
    difference: Literal["relative", "absolute"] = "relative"
    alpha: Alpha = 0.05
    cuped: bool = False
    prior: Prior | None = None
    sequential_tuning: float | None = Field(None, gt=0, allow_inf_nan=False)
    variants: list[dict[str, object]] = Field(min_length=2, max_length=50)


class CompareResult(BaseModel):
    variant: str
    control_mean: Number
    treatment_mean: Number
    effect: Number
    ci_lower: Number
    ci_upper: Number
    p_value: Number
    chance_to_win: Number
    risk_control: Number
    risk_treatment: Number
    variance_reduction: Number
    status: str
    reason: str | None


class CompareResponse(BaseModel):
    results: list[CompareResult]


class SrmRequest(_Strict):
    counts: list[NonNegativeInt] = Field(min_length=2)
    weights: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(min_length=2)
    threshold: Alpha | None = None

    @field_validator("weights")
    @classmethod
    def _one_weight_per_count(cls, weights: list[float], info: ValidationInfo) -> list[float]:
        counts = info.data.get("counts")
        if counts is not None and len(weights) != len(counts):
            raise ValueError(f"weights has {len(weights)} entries but counts has {len(counts)}")
        return weights


class SrmResponse(BaseModel):
    """``chi_square`` and ``p_value`` are null while an arm has fewer than 8 users (too few for the χ² test)."""

    chi_square: Number
    p_value: Number
    mismatch: bool
    threshold: float


class AdjustRequest(_Strict):
    p_values: list[Probability] = Field(min_length=1)
    method: Literal["holm", "bh"]


class AdjustResponse(BaseModel):
    adjusted: list[float]


class PowerRequest(_Strict):
    baseline_rate: float = Field(gt=0, lt=1, allow_inf_nan=False)
    relative_mde: float = Field(gt=0, allow_inf_nan=False)

    @field_validator("relative_mde")
    @classmethod
    def _treatment_rate_below_one(cls, relative_mde: float, info: ValidationInfo) -> float:
        baseline = info.data.get("baseline_rate")
        treatment_rate = None if baseline is None else baseline * (1 + relative_mde)
        if treatment_rate is not None and treatment_rate >= 1:
            raise ValueError(f"baseline_rate × (1 + relative_mde) = {treatment_rate:.4g} must stay below 1")
        return relative_mde

    alpha: Alpha = 0.05
    power: float = Field(0.8, gt=0, lt=1, allow_inf_nan=False)
    variants: int = Field(2, ge=2, le=50)
    daily_users: int | None = Field(None, gt=0)


class PowerResponse(BaseModel):
    users_per_variant: int
    days: int | None = None
