"""Deterministic bucketing: the same (salt, user) always lands in the same variant, in every service and SDK.

bucket = murmur3_x86_32(f"{salt}:{user_id}", seed=0) / 2**32, a uniform number in [0, 1). Variants own
consecutive slices of [0, 1) proportional to their weights, in declaration order.
"""

from __future__ import annotations

from collections.abc import Sequence

import mmh3

_SPACE = 2**32


def bucket(salt: str, user_id: str) -> float:
    """Uniform position of the user in [0, 1) for this salt."""
    return int(mmh3.hash(f"{salt}:{user_id}", 0, signed=False)) / _SPACE


def choose(weights: Sequence[float], position: float) -> int:
    """Index of the slice of [0, 1) holding ``position`` when slices are proportional to ``weights``."""
    if not weights or any(w <= 0 for w in weights):
        raise ValueError("weights must be non-empty and positive")
    if not 0.0 <= position < 1.0:
        raise ValueError("position must lie in [0, 1)")
    target = position * sum(weights)
    cumulative = 0.0
    for index, weight in enumerate(weights):
        cumulative += weight
        if target < cumulative:
            return index
    return len(weights) - 1  # float rounding can leave target == total


def assign(salt: str, user_id: str, weights: Sequence[float]) -> int:
    return choose(weights, bucket(salt, user_id))
