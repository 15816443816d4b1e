"""Sample-ratio mismatch: are users split across the arms as the configured weights say?"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats

from services.analyzer.stats.results import SrmResult, Status

DEFAULT_SRM_THRESHOLD = 0.001
"""p-value below which the split is flagged; strict because the check runs on every look at the results."""
MIN_USERS_PER_ARM = 8
"""The check runs only once every arm has at least 8 users: with fewer, the χ² approximation of the statistic's
distribution is not trusted and a handful of early users would raise false alarms."""


def srm_check(
    observed_users: Sequence[int], weights: Sequence[float], threshold: float = DEFAULT_SRM_THRESHOLD
) -> SrmResult:
    """Pearson χ² goodness of fit (``scipy.stats.chisquare``).

    E_i = N·w_i/Σw with N = Σ O_i;  χ² = Σ (O_i − E_i)²/E_i;  p = P(χ²_{k−1} ≥ χ²) for k arms.
    The test is run only when every arm has at least ``MIN_USERS_PER_ARM`` (8) users; before that ``status`` is
    "insufficient_data" with the reason and no numbers. Then ``status`` is "mismatch" when p < ``threshold``,
    else "ok".
    """
    if len(observed_users) != len(weights):
        raise ValueError("observed_users and weights must have one entry per arm")
    if len(observed_users) < 2:
        raise ValueError("a sample-ratio check needs at least two arms")
    if any(count < 0 for count in observed_users):
        raise ValueError("observed user counts must be non-negative")
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise ValueError("weights must be positive and finite")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    dof = len(observed_users) - 1
    if min(observed_users) < MIN_USERS_PER_ARM:
        counts = "/".join(str(count) for count in observed_users)
        return SrmResult(
            Status.INSUFFICIENT_DATA,
            f"users per arm are {counts}; the check runs once every arm has at least {MIN_USERS_PER_ARM} users",
            dof=dof,
        )
    total = sum(observed_users)
    weight_sum = sum(weights)
    expected = [total * w / weight_sum for w in weights]
    result = stats.chisquare(f_obs=list(observed_users), f_exp=expected)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    if p_value < threshold:
        split = "/".join(str(count) for count in observed_users)
        wanted = "/".join(f"{e:.0f}" for e in expected)
        return SrmResult(
            Status.MISMATCH,
            f"users split {split} where the weights expect {wanted} (p = {p_value:.3g} < {threshold:g}): "
            "assignment or logging is biased, so the comparisons cannot be trusted",
            statistic=statistic, p_value=p_value, dof=dof,
        )
    return SrmResult(Status.OK, None, statistic=statistic, p_value=p_value, dof=dof)
