"""Errors specific to the analyzer."""

from __future__ import annotations

from splitstream.errors import SplitStreamError


class CorruptStatistics(SplitStreamError):
    """A variant hash in Redis holds a value that is not a number: the aggregation's output is damaged."""

    status_code = 500
    code = "corrupt_statistics"


class CorruptLooks(SplitStreamError):
    """A recorded group-sequential look in Redis cannot be read back: the experiment's look history is damaged."""

    status_code = 500
    code = "corrupt_looks"
