"""The SplitStream client: local assignment with the server's own evaluation, exposures and events sent in batches.

Decisions come from :meth:`splitstream.evaluation.Catalog.evaluate`, the code the assignment service runs, on the
catalog fetched from ``GET /v1/config``; no request is made per assignment.

Stickiness: the assignment service keeps each unit's first counted variant in Redis, shared by every instance and
kept across restarts. This client keeps it only in memory, per client object: within one process a user keeps
their variant when the weights or the coverage change, but a new process (or another machine) buckets afresh from
the hash. The memory this takes, and that of the exposures already sent (each is sent once per process), grows
with the number of distinct units seen. A unit the server has already made sticky can, after a weight change, be
shown a different variant here than by the server.
"""

from __future__ import annotations

import atexit
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import httpx

from splitstream.evaluation import Catalog, Decision, Reason
from splitstream.events import TrackEvent
from splitstream.sdk.config_source import ConfigSource
from splitstream.sdk.event_sender import DeliveryStats, EventSender
from splitstream.targeting import Attributes

HTTP_TIMEOUT_SECONDS = 5.0


class SplitStreamError(Exception):
    pass


class ConfigUnavailable(SplitStreamError):
    """No catalog has been fetched yet, so nothing can be evaluated."""


class UnknownExperiment(SplitStreamError, KeyError):
    """The catalog has no experiment with this key."""


Assignment = Decision
"""One experiment's decision for one user, as the service's evaluation makes it (it carries the user id that the
exposure needs and the unit id the user was bucketed by)."""


_HASHED = Reason.HASHED


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SplitStream:
    """Thread-safe. ``background=False`` starts no threads: refresh with :meth:`refresh`, send with :meth:`flush`."""

    def __init__(
        self,
        assignment_url: str,
        collector_url: str,
        api_key: str,
        *,
        refresh_seconds: float = 10.0,
        flush_seconds: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
        background: bool = True,
    ) -> None:
        self._clock = clock
        headers = {"Authorization": f"Bearer {api_key}"}
        # One HTTP client per thread of work: the config refresh and the event posts never wait on each other.
        self._config_http = httpx.Client(transport=transport, headers=headers, timeout=HTTP_TIMEOUT_SECONDS)
        self._events_http = httpx.Client(transport=transport, headers=headers, timeout=HTTP_TIMEOUT_SECONDS)
        self._sender = EventSender(
            self._events_http, collector_url, flush_seconds=flush_seconds, start_thread=background
        )
        self._config = ConfigSource(
            self._config_http, assignment_url, refresh_seconds=refresh_seconds, start_thread=False
        )
        # The first fetch is synchronous (up to the HTTP timeout), so assignments work as soon as this returns.
        self._config.refresh()
        if background:
            self._config.start()
        self._lock = threading.Lock()
        self._sticky: dict[tuple[str | None, str, int], str] = {}
        """(unit id, experiment, phase) → the variant first counted; see the module docstring."""
        self._exposed: set[str] = set()
        self._closed = False
        atexit.register(self.close)

    @property
    def catalog(self) -> Catalog | None:
        return self._config.catalog

    def refresh(self) -> bool:
        """Fetch the experiment definitions now; True when the catalog in use is current."""
        return self._config.refresh()

    def assign(self, user_id: str, attributes: Attributes | None = None, *, experiment: str) -> Assignment:
        """The user's decision for one experiment, evaluated locally; nothing is sent (see :meth:`expose`)."""
        catalog = self._require_catalog()
        try:
            return self._evaluate(catalog, experiment, user_id, attributes or {}, self._now())
        except KeyError:
            raise UnknownExperiment(experiment) from None

    def assign_all(
        self, user_id: str, attributes: Attributes | None = None, experiments: Iterable[str] | None = None
    ) -> list[Assignment]:
        """Decisions for ``experiments`` (default: every running or shipped experiment), in that order."""
        catalog = self._require_catalog()
        keys = list(catalog.live_keys if experiments is None else experiments)
        unknown = [key for key in keys if catalog.get(key) is None]
        if unknown:
            raise UnknownExperiment(", ".join(unknown))
        now = self._now()
        return [self._evaluate(catalog, key, user_id, attributes or {}, now) for key in keys]

    def expose(self, assignment: Assignment, attributes: Attributes | None = None) -> bool:
        """Queue the exposure when the payload is shown: only for users in the experiment, once per (experiment,
        phase, user) in this process. Pass the user's ``attributes`` (those given to :meth:`assign`) so that the
        experiment's segments see them. True when an exposure was queued."""
        if not assignment.in_experiment:
            return False
        catalog = self._config.catalog
        definition = catalog.get(assignment.experiment) if catalog is not None else None
        exposure = assignment.exposure(
            self._clock(), definition.segment_attributes(attributes or {}) if definition is not None else {}
        )
        event_id = exposure.event_id
        with self._lock:
            if event_id in self._exposed:
                return False
            self._exposed.add(event_id)
        self._sender.send(exposure.model_dump(mode="json", exclude_none=True))
        return True

    def track(
        self,
        user_id: str,
        name: str,
        value: float | None = None,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        """Queue an event (a conversion, or a valued one such as revenue); returns its event id. Invalid input
        raises pydantic's ``ValidationError`` here rather than being rejected by the collector later."""
        event = TrackEvent(
            type="event", event_id=event_id or str(uuid.uuid4()), user_id=user_id, name=name, value=value,
            timestamp=timestamp or self._clock(),
        )
        self._sender.send(event.model_dump(mode="json", exclude_none=True))
        return event.event_id

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued now; True when nothing is left."""
        return self._sender.flush(timeout)

    def delivery_stats(self) -> DeliveryStats:
        return self._sender.stats()

    def close(self, timeout: float = 5.0) -> None:
        """Stop refreshing and flush the queued events (within ``timeout``); also run at interpreter exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._config.close()
        self._sender.close(timeout)
        self._config_http.close()
        self._events_http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _now(self) -> datetime | None:
        # Reading the clock is a fifth of an evaluation; with the default clock it is read only when a ramp needs it.
        return None if self._clock is _utc_now else self._clock()

    def _require_catalog(self) -> Catalog:
        catalog = self._config.catalog
        if catalog is None:
            raise ConfigUnavailable("no experiment definitions fetched yet from the assignment service")
        return catalog

    def _evaluate(
        self, catalog: Catalog, key: str, user_id: str, attributes: Attributes, now: datetime | None
    ) -> Assignment:
        # Evaluate first and consult the sticky records only for a hashed decision: that costs one dict lookup, and
        # a second evaluation only for a unit whose recorded variant the hash no longer gives. Single dict
        # operations are atomic under the GIL; two threads assigning the same new unit at once compute the same
        # hash, so whichever records first records the same variant.
        decision = catalog.evaluate(key, user_id, attributes, now)
        if decision.reason is not _HASHED:
            return decision
        slot = (decision.unit_id, key, decision.phase)
        recorded = self._sticky.get(slot)
        if recorded is None:
            self._sticky[slot] = decision.variant
            return decision
        if recorded == decision.variant:
            return decision._replace(reason=Reason.STICKY)
        return catalog.evaluate(key, user_id, attributes, now, recorded)
