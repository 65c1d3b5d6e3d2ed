"""The skeleton every long-running role runs on: stop lets a loop finish its turn, abort
cancels it where it is, and a stop cuts a loop's sleep short."""

from __future__ import annotations

import asyncio
import time

import pytest

from plumbing.runner import Runner


async def test_stop_lets_the_turn_finish_and_cuts_the_sleep_short() -> None:
    runner = Runner()
    turns: list[str] = []

    async def loop() -> None:
        while not runner.stopping:
            turns.append("begun")
            await runner.sleep(60)
            turns.append("ended")

    runner.start(loop())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await runner.stop()
    assert turns == ["begun", "ended"]
    assert time.monotonic() - started < 30  # not the minute the loop would have slept


async def test_abort_cancels_the_loops_and_the_tasks_it_is_given() -> None:
    runner = Runner()
    finished: list[str] = []

    async def never_looks(name: str) -> None:
        await asyncio.sleep(60)
        finished.append(name)

    other = asyncio.create_task(never_looks("other"))
    runner.start(never_looks("loop"))
    await runner.abort([other])
    assert finished == []
    assert other.cancelled()


async def test_a_loops_error_is_raised_by_stop() -> None:
    runner = Runner()

    async def broken() -> None:
        raise RuntimeError("a bug")

    runner.start(broken())
    with pytest.raises(RuntimeError, match="a bug"):
        await runner.stop()
