"""Delivery of exposures and events to the collector: queued by the caller, posted in batches in the background.

Network errors, 5xx and 429 answers keep the batch for another try after a capped exponential backoff (or the
server's ``Retry-After`` when longer). Other non-2xx answers refuse the whole batch: it is dropped with a warning,
as are the single events a 202 answer lists as rejected. The queue is bounded: when full, the oldest event makes
room for the newest and is counted in :attr:`DeliveryStats.dropped`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
import orjson

log = logging.getLogger(__name__)

MAX_BATCH = 500
MAX_BODY_BYTES = 1_000_000
"""Under the collector's 1 MiB body limit, with room for the envelope."""
DEFAULT_MAX_QUEUE = 100_000
_DROP_WARNING_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    queued: int
    """Waiting to be posted (including a batch kept for retry)."""
    delivered: int
    """Accepted by the collector."""
    rejected: int
    """Refused by the collector: events listed as rejected in a 202 answer and every event of a 4xx batch."""
    dropped: int
    """Discarded here, unsent: the oldest events when the queue was full, and events sent after close()."""


class EventSender:
    """A thread-safe batcher posting ``{"events": [...]}`` to ``{collector_url}/v1/events``."""

    def __init__(
        self,
        http: httpx.Client,
        collector_url: str,
        *,
        flush_seconds: float = 1.0,
        batch_size: int = MAX_BATCH,
        max_queue: int = DEFAULT_MAX_QUEUE,
        base_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        start_thread: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must lie in [1, {MAX_BATCH}]")
        if max_queue < batch_size:
            raise ValueError("max_queue must be at least batch_size")
        if flush_seconds <= 0:
            raise ValueError("flush_seconds must be > 0")
        self._http = http
        self._url = collector_url.rstrip("/") + "/v1/events"
        self._flush_seconds = flush_seconds
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._base_backoff = base_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        # Events are kept encoded: a value JSON cannot carry fails in send(), at the caller, and retries re-use bytes.
        self._queue: deque[bytes] = deque()
        self._changed = threading.Condition()
        self._posting = threading.Lock()
        self._failures = 0
        self._delivered = 0
        self._rejected = 0
        self._dropped = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        if start_thread:
            self._thread = threading.Thread(target=self._run, name="splitstream-event-sender", daemon=True)
            self._thread.start()

    def send(self, event: Mapping[str, object]) -> None:
        """Queue one event; raises ``TypeError`` if it cannot be encoded as JSON."""
        encoded = orjson.dumps(event)
        with self._changed:
            if self._closed:
                self._dropped += 1
                log.warning("event %s sent after close() was dropped", event.get("event_id"))
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self._count_drop()
            self._queue.append(encoded)
            if len(self._queue) >= self._batch_size:
                self._changed.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Post everything queued now, retrying as needed until ``timeout``; True when the queue is empty."""
        deadline = self._monotonic() + timeout
        while True:
            delay = self._drain(deadline)
            if delay is None or delay >= deadline - self._monotonic():
                return self.stats().queued == 0
            self._sleep(delay)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background thread and flush what is queued, within ``timeout`` seconds in all."""
        deadline = self._monotonic() + timeout
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - self._monotonic()))
        if not self.flush(max(0.0, deadline - self._monotonic())):
            log.warning("closing with %d events undelivered", self.stats().queued)

    def stats(self) -> DeliveryStats:
        with self._changed:
            return DeliveryStats(len(self._queue), self._delivered, self._rejected, self._dropped)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._closed or len(self._queue) >= self._batch_size, timeout=self._flush_seconds
                )
                if self._closed:
                    return  # close() flushes from its own thread, within its timeout
            try:
                delay = self._drain(deadline=None)
            except Exception:
                log.exception("event delivery failed unexpectedly")
                delay = self._max_backoff
            if delay is not None:
                with self._changed:
                    self._changed.wait_for(lambda: self._closed, timeout=delay)

    def _drain(self, deadline: float | None) -> float | None:
        """Post batches until the queue is empty or the deadline passes; after a retryable failure, stop and return
        how long to wait before the next try."""
        wait = -1.0 if deadline is None else max(0.0, deadline - self._monotonic())
        if not self._posting.acquire(timeout=wait):
            return None
        try:
            while deadline is None or self._monotonic() < deadline:
                batch = self._take()
                if not batch:
                    return None
                try:
                    retry_after = self._deliver(batch)
                except BaseException:
                    self._put_back(batch)
                    raise
                if retry_after is not None:
                    self._put_back(batch)
                    self._failures += 1
                    backoff = self._base_backoff * 2.0 ** min(self._failures - 1, 30)  # the cap keeps the float finite
                    return min(self._max_backoff, max(backoff, retry_after))
                self._failures = 0
            return None
        finally:
            self._posting.release()

    def _take(self) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        with self._changed:
            while self._queue and len(batch) < self._batch_size:
                size += len(self._queue[0]) + 1
                if batch and size > MAX_BODY_BYTES:
                    break
                batch.append(self._queue.popleft())
        return batch

    def _put_back(self, batch: list[bytes]) -> None:
        with self._changed:
            self._queue.extendleft(reversed(batch))
            while len(self._queue) > self._max_queue:
                self._queue.popleft()
                self._count_drop()

    def _count_drop(self) -> None:
        self._dropped += 1
        if self._dropped % _DROP_WARNING_EVERY == 1:
            log.warning("event queue full (%d): dropping the oldest events; %d dropped so far",
                        self._max_queue, self._dropped)

    def _deliver(self, batch: list[bytes]) -> float | None:
        """None when the collector settled the batch (accepted or refused it); else the seconds it asked to wait
        (0 when it did not say)."""
        body = b'{"events":[' + b",".join(batch) + b"]}"
        try:
            response = self._http.post(self._url, content=body, headers={"content-type": "application/json"})
        except httpx.TransportError as error:
            log.warning("collector unreachable (%r); keeping %d events for another try", error, len(batch))
            return 0.0
        status = response.status_code
        if status == httpx.codes.TOO_MANY_REQUESTS or status >= httpx.codes.INTERNAL_SERVER_ERROR:
            log.warning("collector answered %d; keeping %d events for another try", status, len(batch))
            return _retry_after(response)
        if not response.is_success:
            log.warning("collector refused %d events with %d: %s", len(batch), status, response.text[:500])
            with self._changed:
                self._rejected += len(batch)
            return None
        rejects = _rejects(response)
        for reject in rejects:
            index = reject.get("index")
            event_id = _event_id(batch[index]) if isinstance(index, int) and 0 <= index < len(batch) else None
            log.warning("collector rejected event %s (index %s): %s %s",
                        event_id, index, reject.get("field"), reject.get("reason"))
        with self._changed:
            self._rejected += min(len(rejects), len(batch))
            self._delivered += max(0, len(batch) - len(rejects))
        return None


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:  # an HTTP date: rare enough to fall back on our own backoff
        return 0.0


def _rejects(response: httpx.Response) -> list[dict[str, object]]:
    try:
        answer = response.json()
    except ValueError:
        return []
    rejected = answer.get("rejected") if isinstance(answer, dict) else None
    return [item for item in rejected if isinstance(item, dict)] if isinstance(rejected, list) else []


def _event_id(encoded: bytes) -> object:
    event = orjson.loads(encoded)
    return event.get("event_id") if isinstance(event, dict) else None
