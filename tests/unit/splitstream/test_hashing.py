"""Hash version 1: the bucketing every service and SDK must reproduce, and its statistical properties."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import mmh3
import numpy as np
import numpy.typing as npt
import pytest
from scipy.stats import chi2_contingency, chisquare

from splitstream.hashing import BUCKETS, HASH_VERSION, boundaries, bucket, in_ranges, variant_index, variant_ranges

VECTORS_PATH = Path(__file__).resolve().parents[3] / "sdk" / "test-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
# Significance for the statistical tests: a correct hash fails one of them about once in a thousand runs.
ALPHA = 0.001


def _buckets(salt: str, count: int) -> npt.NDArray[np.int64]:
    return np.fromiter((bucket(salt, f"user-{i}") for i in range(count)), dtype=np.int64, count=count)


def _variant_by_bucket(weights: list[float], coverage: float) -> npt.NDArray[np.int64]:
    """variant_index for every bucket (-1 outside the coverage), to map many units at numpy speed."""
    indexes = (variant_index(weights, coverage, position) for position in range(BUCKETS))
    return np.fromiter((-1 if index is None else index for index in indexes), dtype=np.int64, count=BUCKETS)


# --- the algorithm -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seed", "expected"),
    [
        # Published murmur3_x86_32 vectors (SMHasher's reference implementation).
        ("", 0, 0x00000000),
        ("", 1, 0x514E28B7),
        ("", 0xFFFFFFFF, 0x81F16F39),
        ("Hello, world!", 0, 0xC0363E43),
        ("The quick brown fox jumps over the lazy dog", 0, 0x2E4FF723),
    ],
)
def test_mmh3_is_murmur3_x86_32(text: str, seed: int, expected: int) -> None:
    assert mmh3.hash(text, seed, signed=False) == expected


@pytest.mark.parametrize(
    ("salt", "unit"), [("salt", "user"), ("title-test", "u42"), ("标题实验", "ユーザー"), ("a:b", "c")]
)
def test_bucket_is_murmur3_of_salt_colon_unit_mod_buckets(salt: str, unit: str) -> None:
    assert HASH_VERSION == 1
    assert BUCKETS == 10_000
    assert bucket(salt, unit) == mmh3.hash(f"{salt}:{unit}".encode(), 0, signed=False) % 10_000


def test_bucket_depends_on_the_salt() -> None:
    units = [f"user-{i}" for i in range(100)]
    assert [bucket("exp-a", unit) for unit in units] != [bucket("exp-b", unit) for unit in units]


# --- the shared vectors --------------------------------------------------------------------------------------------


def test_the_vectors_are_for_this_hash_version() -> None:
    assert VECTORS["hash_version"] == HASH_VERSION
    assert VECTORS["buckets"] == BUCKETS
    assert len(VECTORS["cases"]) >= 40
    assert len(VECTORS["edges"]) >= 90


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda case: f"{case['salt']}:{case['unit_id'][:20]}")
def test_every_vector_case_is_reproduced(case: dict[str, Any]) -> None:
    # The bucket is also checked against mmh3 directly, so a vector file regenerated from a broken bucket() fails.
    assert case["bucket"] == mmh3.hash(f"{case['salt']}:{case['unit_id']}", 0, signed=False) % BUCKETS
    assert bucket(case["salt"], case["unit_id"]) == case["bucket"]
    assert variant_index(case["weights"], case["coverage"], case["bucket"]) == case["variant"]


@pytest.mark.parametrize(
    "edge", VECTORS["edges"], ids=lambda edge: f"{len(edge['weights'])}w-c{edge['coverage']}-b{edge['bucket']}"
)
def test_every_vector_edge_is_reproduced(edge: dict[str, Any]) -> None:
    assert variant_index(edge["weights"], edge["coverage"], edge["bucket"]) == edge["variant"]


# --- ranges, derived by hand from the formula in the module docstring ---------------------------------------------


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([0.5, 0.5], [0, 5000, 10000]),
        ([1 / 3, 1 / 3, 1 / 3], [0, 3333, 6667, 10000]),  # 3333.33 -> 3333, 6666.67 -> 6667
        ([0.1, 0.2, 0.7], [0, 1000, 3000, 10000]),  # 0.1 + 0.2 = 0.30000000000000004 still lands on 3000
        ([0.25, 0.25, 0.25, 0.25], [0, 2500, 5000, 7500, 10000]),
        ([0.00005, 0.99995], [0, 1, 10000]),  # 0.5 rounds half up (Python's round() would give 0)
        ([1.0], [0, 10000]),
    ],
)
def test_boundaries(weights: list[float], expected: list[int]) -> None:
    assert boundaries(weights) == expected


@pytest.mark.parametrize(
    ("weights", "coverage", "expected"),
    [
        ([0.5, 0.5], 1.0, [(0, 5000), (5000, 10000)]),
        ([0.5, 0.5], 0.1, [(0, 500), (5000, 5500)]),
        ([0.5, 0.5], 0.0, [(0, 0), (5000, 5000)]),
        ([0.5, 0.5], 0.0001, [(0, 1), (5000, 5001)]),  # 5000 * 0.0001 = 0.5 rounds half up
        ([0.0005, 0.9995], 0.5, [(0, 3), (5, 5003)]),  # 2.5 -> 3, 4997.5 -> 4998
        ([1 / 3, 1 / 3, 1 / 3], 0.25, [(0, 833), (3333, 4167), (6667, 7500)]),  # 833.25, 833.5, 833.25
        ([0.9, 0.1], 0.05, [(0, 450), (9000, 9050)]),
    ],
)
def test_variant_ranges(weights: list[float], coverage: float, expected: list[tuple[int, int]]) -> None:
    assert variant_ranges(weights, coverage) == expected


def test_variant_index_follows_the_ranges_at_their_edges() -> None:
    weights = [0.5, 0.5]
    assert [variant_index(weights, 0.1, position) for position in (0, 499, 500, 4999, 5000, 5499, 5500, 9999)] == [
        0, 0, None, None, 1, 1, None, None,
    ]
    assert [variant_index(weights, 1.0, position) for position in (0, 4999, 5000, 9999)] == [0, 0, 1, 1]
    assert all(variant_index([0.25] * 4, 0.0, position) is None for position in range(0, BUCKETS, 7))


def test_in_ranges_is_half_open() -> None:
    ranges = [(0, 500), (5000, 5500)]
    assert [in_ranges(position, ranges) for position in (0, 499, 500, 4999, 5000, 5499, 5500)] == [
        True, True, False, False, True, True, False,
    ]
    assert not in_ranges(0, [])


@pytest.fixture(scope="module")
def ramp_positions() -> npt.NDArray[np.int64]:
    return _buckets("ramp-check", 20_000)


def _variant_by_range(weights: list[float], coverage: float) -> npt.NDArray[np.int64]:
    by_bucket = np.full(BUCKETS, -1, dtype=np.int64)
    for index, (start, end) in enumerate(variant_ranges(weights, coverage)):
        by_bucket[start:end] = index
    return by_bucket


@pytest.mark.parametrize("weights", [[0.5, 0.5], [0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3], [0.9, 0.1]])
def test_a_unit_keeps_its_variant_as_coverage_ramps_up(
    weights: list[float], ramp_positions: npt.NDArray[np.int64]
) -> None:
    coverages = [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    by_coverage = [_variant_by_range(weights, coverage)[ramp_positions] for coverage in coverages]
    for lower, higher in itertools.pairwise(by_coverage):
        was_in = lower >= 0
        assert np.array_equal(higher[was_in], lower[was_in])
    assert (by_coverage[0] == -1).all()
    assert (by_coverage[-1] >= 0).all()
    # Not vacuous: at 10% about 2,000 of the 20,000 units are in.
    assert 1_700 < int((by_coverage[coverages.index(0.1)] >= 0).sum()) < 2_300


@pytest.mark.parametrize(
    "weights", [[], [0.0, 1.0], [0.5, 0.0, 0.5], [-0.5, 1.5], [math.nan, 1.0], [math.inf, 1.0], [0.5, -math.inf]]
)
def test_invalid_weights_are_refused(weights: list[float]) -> None:
    with pytest.raises(ValueError):
        boundaries(weights)
    with pytest.raises(ValueError):
        variant_ranges(weights, 1.0)
    with pytest.raises(ValueError):
        variant_index(weights, 1.0, 0)


@pytest.mark.parametrize("coverage", [-0.01, 1.01, -math.inf, math.inf, math.nan])
def test_coverage_outside_zero_one_is_refused(coverage: float) -> None:
    with pytest.raises(ValueError):
        variant_ranges([0.5, 0.5], coverage)
    with pytest.raises(ValueError):
        variant_index([0.5, 0.5], coverage, 0)


@pytest.mark.parametrize("position", [-1, BUCKETS, BUCKETS + 1, -BUCKETS])
def test_position_outside_the_buckets_is_refused(position: int) -> None:
    with pytest.raises(ValueError):
        variant_index([0.5, 0.5], 1.0, position)


# --- statistics ----------------------------------------------------------------------------------------------------


def test_buckets_are_uniform_over_a_million_units() -> None:
    counts = np.bincount(_buckets("uniformity-check", 1_000_000), minlength=BUCKETS)
    assert counts.shape == (BUCKETS,)
    assert chisquare(counts).pvalue > ALPHA


def test_two_experiments_assign_independently() -> None:
    thirds = _variant_by_bucket([1 / 3, 1 / 3, 1 / 3], 1.0)
    units = 200_000
    first = thirds[_buckets("title-test", units)]
    second = thirds[_buckets("price-2026-q4", units)]
    table = np.zeros((3, 3), dtype=np.int64)
    np.add.at(table, (first, second), 1)
    assert table.sum() == units
    assert chi2_contingency(table).pvalue > ALPHA


def test_the_split_follows_the_weights() -> None:
    weights = [0.1, 0.2, 0.7]
    units = 200_000
    observed = np.bincount(_variant_by_bucket(weights, 1.0)[_buckets("split-check", units)], minlength=3)
    assert chisquare(observed, [units * weight for weight in weights]).pvalue > ALPHA
