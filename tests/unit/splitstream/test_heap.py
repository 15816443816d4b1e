"""The start-up freeze, each case in a fresh interpreter: a freeze is for the whole process, once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _run(script: str) -> str:
    answer = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, cwd=PROJECT_ROOT,
        timeout=60, check=False,
    )
    assert answer.returncode == 0, answer.stderr
    return answer.stdout.strip()


def test_the_lifespan_freezes_what_is_alive_once_started_and_collects_the_garbage_first() -> None:
    printed = _run("""
        import asyncio, gc, weakref
        from contextlib import asynccontextmanager
        from splitstream.heap import freezing_after_startup

        class Cycle:
            def __init__(self): self.me = self

        seen = {}

        @asynccontextmanager
        async def lifespan(app):
            seen["garbage"] = weakref.ref(Cycle())  # garbage in a cycle: only the collector frees it
            seen["during start-up"] = gc.get_freeze_count()
            yield {"kept": [object() for _ in range(1000)]}

        async def main():
            async with freezing_after_startup(lifespan)("app") as state:
                frozen = gc.get_freeze_count()
                print(seen["during start-up"], frozen >= 1000, seen["garbage"]() is None)
        asyncio.run(main())
    """)
    assert printed.split() == ["0", "True", "True"]


def test_a_second_start_in_the_same_process_freezes_nothing_more() -> None:
    printed = _run("""
        import gc
        from splitstream.heap import freeze_startup_heap
        freeze_startup_heap()
        first = gc.get_freeze_count()
        later = [[index] for index in range(5000)]
        freeze_startup_heap()
        print(first > 0, gc.get_freeze_count() == first)
    """)
    assert printed.split() == ["True", "True"]
