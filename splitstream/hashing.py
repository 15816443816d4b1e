"""Deterministic bucketing, hash version 1: the same (salt, unit) lands in the same bucket in every service and SDK.

    bucket = murmur3_x86_32(utf8(f"{salt}:{unit_id}"), seed=0) mod 10_000

An experiment's variants own consecutive bucket ranges in declaration order. With weights w_i (summing to 1) the
boundaries are b_0 = 0, b_i = floor(BUCKETS * (w_0 + ... + w_{i-1}) + 0.5), b_n = BUCKETS; variant i owns
[b_i, b_i + floor((b_{i+1} - b_i) * coverage + 0.5)). Each range keeps its start when coverage ramps, so a user
who is in at 10% coverage is in the same variant at 50%. The sums and roundings are the same IEEE-754 operations in
Python and JavaScript (``sdk/js``), and ``sdk/test-vectors.json`` pins the results for both.

``mod 10_000`` favours the lowest 7,296 buckets by one part in 429,497 (2**32 is not a multiple of 10,000): far
below what any sample can detect, and it keeps the arithmetic identical in every language.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import mmh3

HASH_VERSION = 1
BUCKETS = 10_000

BucketRange = tuple[int, int]
"""A half-open range [start, end) of buckets."""


def bucket(salt: str, unit_id: str) -> int:
    """The unit's bucket in [0, BUCKETS) for this salt."""
    return hash_position(f"{salt}:{unit_id}")


def hash_position(key: str) -> int:
    """The bucket of an already joined ``"{salt}:{unit_id}"`` (the evaluation keeps each salt's prefix)."""
    position: int = mmh3.hash(key, 0, signed=False) % BUCKETS
    return position


def share_buckets(share: float) -> int:
    """How many buckets a share of the population owns (rounded half up, as in every SDK)."""
    return _round_half_up(share * BUCKETS)


def _round_half_up(value: float) -> int:
    # Python's round() rounds half to even and JavaScript's Math.round half up; floor(x + 0.5) is the same in both.
    return math.floor(value + 0.5)


def boundaries(weights: Sequence[float]) -> list[int]:
    """b_0 .. b_n: variant i's full-coverage range is [b_i, b_{i+1})."""
    if not weights or any(not math.isfinite(w) or w <= 0 for w in weights):
        raise ValueError("weights must be non-empty, finite and positive")
    points = [0]
    cumulative = 0.0
    for weight in weights[:-1]:
        cumulative += weight
        points.append(min(BUCKETS, _round_half_up(cumulative * BUCKETS)))
    points.append(BUCKETS)
    return points


def variant_ranges(weights: Sequence[float], coverage: float) -> list[BucketRange]:
    """Each variant's bucket range at this coverage; an empty range (start == end) takes nobody."""
    if not 0.0 <= coverage <= 1.0:
        raise ValueError("coverage must lie in [0, 1]")
    points = boundaries(weights)
    return [
        (start, start + _round_half_up((end - start) * coverage))
        for start, end in itertools.pairwise(points)
    ]


def variant_index(weights: Sequence[float], coverage: float, position: int) -> int | None:
    """The variant whose range holds ``position``; None when the position is outside the coverage."""
    if not 0 <= position < BUCKETS:
        raise ValueError(f"position must lie in [0, {BUCKETS})")
    for index, (start, end) in enumerate(variant_ranges(weights, coverage)):
        if start <= position < end:
            return index
    return None


def in_ranges(position: int, ranges: Sequence[BucketRange]) -> bool:
    return any(start <= position < end for start, end in ranges)
