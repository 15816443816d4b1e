"""Layers (disjoint bucket ranges) and holdouts (shares of units kept out of experiments)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from splitstream.experiment import Experiment
from splitstream.hashing import BUCKETS, bucket
from splitstream.layers import Holdout, HoldoutScope, Layer, allocate, free_ranges, size, taken_in_layer

Ranges = list[tuple[int, int]]


def _experiment(key: str, **fields: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "key": key,
            "variants": [{"key": "control"}, {"key": "treatment"}],
            "salt": f"salt-{key}",
            "created_at": "2026-01-01T00:00:00Z",
        }
        | fields
    )


# --- free ranges ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ([], [(0, 10000)]),
        ([(0, 10000)], []),
        ([(0, 5000), (5000, 10000)], []),
        ([(1000, 2000)], [(0, 1000), (2000, 10000)]),
        ([(2000, 3000), (0, 500)], [(500, 2000), (3000, 10000)]),  # unsorted input
        ([(0, 3000), (2000, 4000)], [(4000, 10000)]),  # overlapping input
        ([(1000, 5000), (2000, 3000)], [(0, 1000), (5000, 10000)]),  # nested input
        ([(9000, 10000)], [(0, 9000)]),
    ],
)
def test_free_ranges_are_the_gaps_in_order(taken: Ranges, expected: Ranges) -> None:
    assert free_ranges(taken) == expected


def test_size_counts_buckets() -> None:
    assert size([]) == 0
    assert size([(0, 500), (5000, 5500)]) == 1000


# --- allocation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "taken", "expected"),
    [
        (0.1, [], [(0, 1000)]),
        (1.0, [], [(0, 10000)]),
        (0.1, [(0, 500)], [(500, 1500)]),  # first fit: the lowest free buckets
        (0.2, [(0, 1000), (3000, 10000)], [(1000, 3000)]),  # exactly the one gap
        (0.05, [(0, 1000), (2000, 3000), (4000, 10000)], [(1000, 1500)]),
        (0.15, [(0, 1000), (2000, 3000), (4000, 10000)], [(1000, 2000), (3000, 3500)]),  # split across gaps
        (0.5, [(0, 5000)], [(5000, 10000)]),  # the whole remainder
        (0.3333, [], [(0, 3333)]),
    ],
)
def test_allocate_is_first_fit(share: float, taken: Ranges, expected: Ranges) -> None:
    assert allocate(share, taken) == expected


@pytest.mark.parametrize(
    ("share", "taken"),
    [
        (0.25, [(0, 1000), (3000, 10000)]),  # 2,000 free, 2,500 needed
        (0.5, [(0, 5001)]),
        (0.01, [(0, 10000)]),
        (0.2, [(0, 1000), (1500, 5000), (5500, 10000)]),  # 1,000 free in two gaps, 2,000 needed
    ],
)
def test_allocate_gives_none_when_the_layer_is_short(share: float, taken: Ranges) -> None:
    assert allocate(share, taken) is None


def test_allocations_never_overlap_and_fill_the_layer() -> None:
    taken: Ranges = []
    for share in (0.3, 0.25, 0.2, 0.15, 0.1):
        granted = allocate(share, taken)
        assert granted is not None
        assert size(granted) == round(share * BUCKETS)
        assert [(a, b) for a in granted for b in taken if a[0] < b[1] and b[0] < a[1]] == []  # no overlap
        taken += granted
    assert free_ranges(taken) == []
    assert allocate(0.0001, taken) is None


# --- what a layer holds --------------------------------------------------------------------------------------------


def test_taken_in_layer_counts_only_live_experiments_of_that_layer() -> None:
    home = {"key": "home", "share": 0.1}
    experiments = [
        _experiment("draft", status="draft", layer=home, layer_ranges=[(0, 1000)]),
        _experiment("running", status="running", layer=home, layer_ranges=[(1000, 1500), (3000, 3500)]),
        _experiment("paused", status="paused", layer=home, layer_ranges=[(2000, 3000)]),
        _experiment("stopped", status="stopped", layer=home, layer_ranges=[(4000, 5000)]),
        _experiment("shipped", status="shipped", layer=home, layer_ranges=[(5000, 6000)], shipped_variant="treatment"),
        _experiment("elsewhere", status="running", layer={"key": "search", "share": 0.1}, layer_ranges=[(6000, 7000)]),
        _experiment("unlayered", status="running"),
    ]
    assert sorted(taken_in_layer("home", experiments)) == [(0, 1000), (1000, 1500), (2000, 3000), (3000, 3500)]
    assert sorted(taken_in_layer("home", experiments, excluding="running")) == [(0, 1000), (2000, 3000)]
    assert taken_in_layer("search", experiments) == [(6000, 7000)]
    assert taken_in_layer("nowhere", experiments) == []


def test_a_layer_salt_defaults_to_its_key() -> None:
    assert Layer(key="home").hash_salt == "home"
    assert Layer(key="home", salt="home-2026").hash_salt == "home-2026"


# --- holdouts ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.01, 0.1, 0.5])
def test_a_holdout_holds_its_share_of_units(share: float) -> None:
    holdout = Holdout(key="holdout-global", share=share)
    units = 100_000
    held = sum(holdout.holds(f"user-{i}") for i in range(units))
    standard_error = math.sqrt(share * (1 - share) / units)
    assert abs(held / units - share) < 4 * standard_error


def test_a_holdout_holds_the_lowest_buckets_of_its_own_salt() -> None:
    # Buckets [0, share * BUCKETS) by the holdout's salt, which defaults to its key.
    units = [f"user-{i}" for i in range(2_000)]
    by_key = Holdout(key="h-2026", share=0.2)
    assert [by_key.holds(unit) for unit in units] == [bucket("h-2026", unit) < 2000 for unit in units]
    salted = Holdout(key="h-2026", share=0.2, salt="other")
    assert [salted.holds(unit) for unit in units] == [bucket("other", unit) < 2000 for unit in units]
    assert [salted.holds(unit) for unit in units] != [by_key.holds(unit) for unit in units]


@pytest.mark.parametrize("share", [0.0, -0.1, 0.51, 1.0, math.nan])
def test_a_holdout_share_lies_in_zero_to_a_half(share: float) -> None:
    with pytest.raises(ValidationError):
        Holdout(key="h", share=share)


def test_a_global_holdout_applies_to_every_experiment_an_attached_one_to_those_naming_it() -> None:
    global_holdout = Holdout(key="everyone", share=0.05, scope=HoldoutScope.GLOBAL)
    attached = Holdout(key="campaign-q4", share=0.1)
    assert attached.scope is HoldoutScope.ATTACHED
    naming = _experiment("naming", holdouts=["campaign-q4"])
    other = _experiment("other", holdouts=["another-campaign"])
    plain = _experiment("plain")
    assert [global_holdout.applies_to(e) for e in (naming, other, plain)] == [True, True, True]
    assert [attached.applies_to(e) for e in (naming, other, plain)] == [True, False, False]
