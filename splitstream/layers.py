"""Layers and holdouts: the two ways experiments share users without contaminating each other.

A layer is a bucket space of its own (its salt hashes each unit into one of ``BUCKETS`` buckets). Each experiment
of the layer owns disjoint ranges of those buckets, sized by its share, so a user meets at most one experiment of
the layer. Ranges are allocated first-fit into the free gaps and stay put for the experiment's life; a stopped or
shipped experiment gives its buckets back.

A holdout is a share of units (by its own salt) that sees none of the experiments it applies to: every experiment
for a ``global`` holdout, the experiments naming it for an ``attached`` (per-campaign) one. Holdout users get the
control and are not counted in those experiments.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from splitstream.experiment import Experiment, ExperimentStatus, Key
from splitstream.hashing import BUCKETS, BucketRange, bucket, share_buckets

HOLDING_STATUSES = frozenset({ExperimentStatus.DRAFT, ExperimentStatus.RUNNING, ExperimentStatus.PAUSED})
"""Experiments in these states keep their layer buckets."""


class Layer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    salt: str = Field("", max_length=128, description="defaults to the key")
    description: str = Field("", max_length=2000)
    created_at: datetime | None = None

    @property
    def hash_salt(self) -> str:
        return self.salt or self.key


class HoldoutScope(StrEnum):
    GLOBAL = "global"
    ATTACHED = "attached"


class Holdout(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Key
    share: float = Field(ge=1 / BUCKETS, le=0.5, allow_inf_nan=False)
    scope: HoldoutScope = HoldoutScope.ATTACHED
    salt: str = Field("", max_length=128, description="defaults to the key")
    description: str = Field("", max_length=2000)
    created_at: datetime | None = None

    @property
    def hash_salt(self) -> str:
        return self.salt or self.key

    def holds(self, unit_id: str) -> bool:
        return bucket(self.hash_salt, unit_id) < share_buckets(self.share)

    def applies_to(self, experiment: Experiment) -> bool:
        return self.scope is HoldoutScope.GLOBAL or self.key in experiment.holdouts


def size(ranges: Iterable[BucketRange]) -> int:
    return sum(end - start for start, end in ranges)


def free_ranges(taken: Iterable[BucketRange]) -> list[BucketRange]:
    """The gaps of [0, BUCKETS) that no range in ``taken`` covers, in order."""
    gaps: list[BucketRange] = []
    cursor = 0
    for start, end in sorted(taken):
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < BUCKETS:
        gaps.append((cursor, BUCKETS))
    return gaps


def allocate(share: float, taken: Iterable[BucketRange]) -> list[BucketRange] | None:
    """``round(share * BUCKETS)`` free buckets, first fit (several gaps if need be); None if the layer lacks room."""
    needed = share_buckets(share)
    granted: list[BucketRange] = []
    for start, end in free_ranges(taken):
        if needed == 0:
            break
        length = min(needed, end - start)
        granted.append((start, start + length))
        needed -= length
    return None if needed > 0 else granted


def taken_in_layer(layer: str, experiments: Iterable[Experiment], *, excluding: str | None = None) -> list[BucketRange]:
    """Buckets of ``layer`` held by its live experiments (all but ``excluding``)."""
    return [
        buckets
        for experiment in experiments
        if experiment.layer is not None and experiment.layer.key == layer and experiment.key != excluding
        and experiment.status in HOLDING_STATUSES
        for buckets in experiment.layer_ranges
    ]
