from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import httpx
import pytest

from splitstream.sdk.event_sender import MAX_BODY_BYTES, DeliveryStats, EventSender

COLLECTOR = "http://collector.test"
Answer = httpx.Response | Exception


def event(number: int, **extra: object) -> dict[str, object]:
    return {"type": "event", "event_id": f"e{number}", "user_id": "u1", "name": "purchase",
            "timestamp": "2026-11-23T15:00:00Z", **extra}


class FakeCollector:
    """``POST /v1/events``: answers from ``script`` first (one per request), then 202 accepting everything."""

    def __init__(self, *script: Answer) -> None:
        self.script = list(script)
        self.batches: list[list[dict[str, object]]] = []
        self.attempts = 0
        self.body_sizes: list[int] = []
        self.received = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.path == "/v1/events"
        assert request.headers["content-type"] == "application/json"
        self.attempts += 1
        self.body_sizes.append(len(request.content))
        answer = self.script.pop(0) if self.script else None
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer
        events = json.loads(request.content)["events"]
        self.batches.append(events)
        self.received.set()
        return httpx.Response(202, json={"accepted": len(events), "rejected": []})

    @property
    def event_ids(self) -> list[object]:
        return [item["event_id"] for batch in self.batches for item in batch]


class Sleeps(list[float]):
    """Records the backoff waits instead of sleeping, and moves its own clock on by them."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def sender_for(
    collector: Callable[[httpx.Request], httpx.Response], sleeps: Sleeps | None = None, **options: int | float | bool
) -> EventSender:
    """With ``start_thread=False`` time is the fake clock of ``sleeps``; the thread itself waits in real time."""
    http = httpx.Client(transport=httpx.MockTransport(collector))
    clock = sleeps if sleeps is not None else Sleeps()
    return EventSender(http, COLLECTOR, sleep=clock, monotonic=clock.monotonic, **options)  # type: ignore[arg-type]


def test_batches_hold_at_most_500_events_in_order() -> None:
    collector = FakeCollector()
    sender = sender_for(collector, start_thread=False)
    for number in range(1234):
        sender.send(event(number))

    assert sender.flush() is True

    assert [len(batch) for batch in collector.batches] == [500, 500, 234]
    assert collector.event_ids == [f"e{number}" for number in range(1234)]
    assert sender.stats() == DeliveryStats(queued=0, delivered=1234, rejected=0, dropped=0)


def test_batches_stay_under_the_body_limit() -> None:
    collector = FakeCollector()
    sender = sender_for(collector, start_thread=False)
    for number in range(12):
        sender.send(event(number, note="x" * 300_000))

    assert sender.flush() is True

    assert max(collector.body_sizes) <= MAX_BODY_BYTES + len(b'{"events":[]}')
    assert len(collector.batches) == 4  # three 300 kB events fit under 1 MB, four do not
    assert collector.event_ids == [f"e{number}" for number in range(12)]


def test_a_503_is_retried_after_its_retry_after_then_delivered() -> None:
    collector = FakeCollector(httpx.Response(503, headers={"Retry-After": "5"}))
    sleeps = Sleeps()
    sender = sender_for(collector, sleeps, start_thread=False)
    sender.send(event(1))
    sender.send(event(2))

    assert sender.flush() is True

    assert collector.attempts == 2
    assert sleeps == [5.0]  # the server's 5 s beats the first backoff step of 0.5 s
    assert collector.event_ids == ["e1", "e2"]
    assert sender.stats().delivered == 2


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(429), httpx.Response(500)],
    ids=["connect", "timeout", "429", "500"],
)
def test_retryable_failures_back_off_exponentially_up_to_the_cap(failure: Answer) -> None:
    collector = FakeCollector(*[failure] * 5)
    sleeps = Sleeps()
    sender = sender_for(collector, sleeps, start_thread=False, base_backoff_seconds=1.0, max_backoff_seconds=4.0)
    sender.send(event(1))

    assert sender.flush(timeout=60) is True

    assert sleeps == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert collector.event_ids == ["e1"]


def test_flush_gives_up_at_its_timeout_and_keeps_the_events() -> None:
    collector = FakeCollector(*[httpx.Response(503)] * 100)
    sleeps = Sleeps()
    sender = sender_for(collector, sleeps, start_thread=False, base_backoff_seconds=0.4, max_backoff_seconds=30.0)
    sender.send(event(1))

    # After waits of 0.4, 0.8 and 1.6 s (2.8 s), the next one (3.2 s) no longer fits in the 5 s allowed.
    assert sender.flush(timeout=5.0) is False

    assert sleeps == [0.4, 0.8, 1.6]
    assert collector.attempts == 4
    assert sender.stats() == DeliveryStats(queued=1, delivered=0, rejected=0, dropped=0)


def test_a_4xx_batch_is_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    collector = FakeCollector(httpx.Response(422, json={"error": {"code": "invalid"}}))
    sender = sender_for(collector, start_thread=False, batch_size=2)
    for number in range(3):
        sender.send(event(number))

    with caplog.at_level(logging.WARNING, logger="splitstream.sdk.event_sender"):
        assert sender.flush() is True

    assert collector.attempts == 2
    assert collector.event_ids == ["e2"]
    assert sender.stats() == DeliveryStats(queued=0, delivered=1, rejected=2, dropped=0)
    assert "refused 2 events with 422" in caplog.text


def test_rejects_listed_in_a_202_are_logged_by_event_id(caplog: pytest.LogCaptureFixture) -> None:
    answer = httpx.Response(
        202, json={"accepted": 2, "rejected": [{"index": 1, "field": "timestamp", "reason": "too far in the past"}]}
    )
    collector = FakeCollector(answer)
    sender = sender_for(collector, start_thread=False)
    for number in range(3):
        sender.send(event(number))

    with caplog.at_level(logging.WARNING, logger="splitstream.sdk.event_sender"):
        assert sender.flush() is True

    assert sender.stats() == DeliveryStats(queued=0, delivered=2, rejected=1, dropped=0)
    assert "rejected event e1 (index 1): timestamp too far in the past" in caplog.text


def test_a_full_queue_drops_the_oldest_events_and_counts_them(caplog: pytest.LogCaptureFixture) -> None:
    collector = FakeCollector()
    sender = sender_for(collector, start_thread=False, batch_size=2, max_queue=3)

    with caplog.at_level(logging.WARNING, logger="splitstream.sdk.event_sender"):
        for number in range(5):
            sender.send(event(number))

    assert sender.stats().dropped == 2
    assert caplog.text.count("event queue full") == 1
    assert sender.flush() is True
    assert collector.event_ids == ["e2", "e3", "e4"]


def test_a_batch_kept_for_retry_goes_first_and_is_the_oldest_when_the_queue_overflows() -> None:
    collector = FakeCollector()
    sender: EventSender | None = None
    failed = False

    def collector_down_once(request: httpx.Request) -> httpx.Response:
        nonlocal failed
        if failed:
            return collector(request)
        failed = True
        assert sender is not None
        sender.send(event(3))  # arriving while the first batch is in flight
        sender.send(event(4))
        raise httpx.ConnectError("down")

    sender = sender_for(collector_down_once, start_thread=False, batch_size=2, max_queue=3)
    sender.send(event(1))
    sender.send(event(2))

    assert sender.flush() is True

    assert collector.event_ids == ["e2", "e3", "e4"]  # e1, the oldest, made room
    assert sender.stats() == DeliveryStats(queued=0, delivered=3, rejected=0, dropped=1)


def test_an_event_json_cannot_carry_fails_at_send() -> None:
    sender = sender_for(FakeCollector(), start_thread=False)
    with pytest.raises(TypeError):
        sender.send(event(1, value={1, 2}))
    assert sender.stats().queued == 0


def test_the_thread_posts_a_full_batch_at_once() -> None:
    collector = FakeCollector()
    sender = sender_for(collector, batch_size=5, flush_seconds=60.0)
    try:
        for number in range(5):
            sender.send(event(number))
        assert collector.received.wait(2)
        assert collector.event_ids == [f"e{number}" for number in range(5)]
    finally:
        sender.close(timeout=1)


def test_the_thread_posts_a_partial_batch_after_flush_seconds() -> None:
    collector = FakeCollector()
    sender = sender_for(collector, flush_seconds=0.05)
    try:
        sender.send(event(1))
        assert collector.received.wait(2)
        assert collector.event_ids == ["e1"]
    finally:
        sender.close(timeout=1)


def test_close_flushes_what_is_queued_and_later_events_are_dropped() -> None:
    collector = FakeCollector()
    sender = sender_for(collector, flush_seconds=60.0)  # the thread alone would not post for a minute
    for number in range(3):
        sender.send(event(number))

    sender.close(timeout=2)

    assert collector.event_ids == ["e0", "e1", "e2"]
    sender.send(event(4))
    assert sender.stats() == DeliveryStats(queued=0, delivered=3, rejected=0, dropped=1)
    sender.close()  # a second close is harmless
