"""Keeping the cyclic garbage collector off the objects a service builds at start-up.

A service's start-up leaves about 100k long-lived objects (the framework, pydantic's validators, the catalog).
Each full collection walks all of them: measured in-process, a returning user's ``/v1/assign`` spent 2 of its 22 µs
in those collections, one of them every 20k requests or so, each a pause of tens of milliseconds. ``gc.freeze``
moves the objects alive at that point into a generation the collector never walks (Python's documentation
suggests it for this), so collections only see what was made since.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

App = TypeVar("App")
State = TypeVar("State")


def freeze_startup_heap() -> None:
    """Collect the start-up's garbage first (frozen garbage would never be freed), then freeze what is alive.

    Once per process: a process that starts apps again and again (the test suite) would otherwise pay a full
    collection at each start and freeze, never to be freed, whatever the previous apps left behind."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()


def freezing_after_startup(
    lifespan: Callable[[App], AbstractAsyncContextManager[State]],
) -> Callable[[App], AbstractAsyncContextManager[State]]:
    """``lifespan``, freezing the heap once it has started (its clients connected, its state built)."""

    @asynccontextmanager
    async def frozen(app: App) -> AsyncIterator[State]:
        async with lifespan(app) as state:
            freeze_startup_heap()
            yield state

    return frozen
