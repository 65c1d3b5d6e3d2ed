"""The skeleton every long-running role shares (the projector, the outbox, the delivery worker,
the sealer): its loops as tasks, one stop signal, a sleep that a stop cuts short, and the two
ways to end: `stop` lets each loop finish its turn, `abort` cancels them where they are (what a
crash or a lost lease does)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterable
from typing import Any


class Runner:
    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, *loops: Coroutine[Any, Any, None]) -> None:
        self._tasks = [asyncio.create_task(loop) for loop in loops]

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def signal(self) -> None:
        """Ask the loops to end after their turn, without waiting for them."""
        self._stopping.set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    async def sleep(self, seconds: float) -> None:
        """Up to `seconds`, less if a stop is asked meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def stop(self) -> None:
        """Until every loop has finished its turn; a loop's error is raised here."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def abort(self, also: Iterable[asyncio.Task[None]] = ()) -> None:
        """Cancel every loop (and `also`) where it is, and wait for them to end."""
        self._stopping.set()
        tasks = [*self._tasks, *also]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
