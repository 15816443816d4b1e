"""The SplitStream Python SDK: assigns locally with the server's own evaluation and sends exposures and events to
the collector in background batches (see :mod:`splitstream.sdk.client`)."""

from splitstream.evaluation import Decision, Reason
from splitstream.sdk.client import Assignment, ConfigUnavailable, SplitStream, SplitStreamError, UnknownExperiment
from splitstream.sdk.config_source import ConfigSource
from splitstream.sdk.event_sender import DeliveryStats, EventSender

__all__ = [
    "Assignment",
    "ConfigSource",
    "ConfigUnavailable",
    "Decision",
    "DeliveryStats",
    "EventSender",
    "Reason",
    "SplitStream",
    "SplitStreamError",
    "UnknownExperiment",
]
