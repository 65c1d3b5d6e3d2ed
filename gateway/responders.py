"""The gateway's request/reply subjects, served straight on nats-py.

faststream's per-message path (dependency injection, middlewares, a task group and a thread-pool
hop per message) was measured to be most of the gateway's CPU for a one-event submission (see
the README's benchmark section), so the subjects it serves are subscribed here with nats-py's
own callback; faststream still declares them for the AsyncAPI document (lienthong.docs).

Each message is answered in a task of its own, at most `workers` at once: beyond that the
subscription's queue holds the rest, so a burst waits instead of crowding the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from plumbing.subjects import last_token

QUEUE_GROUP = "lienthong"
WORKERS = 64

Handler = Callable[[str, bytes], Awaitable[bytes]]
"""(unit, request body) -> reply body."""


class Responders:
    def __init__(self, client: Client, workers: int = WORKERS) -> None:
        self.client = client
        self._slots = asyncio.Semaphore(workers)
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.log = structlog.get_logger("lienthong.gateway")

    async def serve(self, prefix: str, handle: Handler) -> None:
        """Answer requests on `prefix.<unit>` in the queue group, each with `handle`."""

        async def received(msg: Msg) -> None:
            await self._slots.acquire()
            task = asyncio.create_task(self._answer(msg, prefix, handle))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._subscriptions.append(
            await self.client.subscribe(f"{prefix}.*", queue=QUEUE_GROUP, cb=received)
        )

    async def _answer(self, msg: Msg, prefix: str, handle: Handler) -> None:
        try:
            reply = await handle(last_token(msg.subject, prefix) or "", msg.data)
            if msg.reply:
                await self.client.publish(msg.reply, reply)
        except Exception as e:  # the handlers answer every failure themselves: this is a bug
            self.log.error("gateway.unanswered", subject=msg.subject, error=type(e).__name__)
        finally:
            self._slots.release()

    @property
    def busy(self) -> int:
        """Requests being answered now."""
        return len(self._tasks)

    async def stop(self) -> None:
        """Take no more requests; answer those already received (a shutdown finishes every
        batch it has begun)."""
        for subscription in self._subscriptions:
            await subscription.drain()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped
        if self._tasks:
            await asyncio.wait(list(self._tasks))
