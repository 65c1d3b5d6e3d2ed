"""Replaying the event log for audits (CONTRACT section 7): rebuild, export, verify.

An ordered consumer (ephemeral, and deleted when done, so it leaves nothing behind and also works
on a copied log) reads ONESTOP_EVENTS in log order. Nothing is written and nothing is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from gateway.jetstream import Delivery, delivery_of
from gateway.streams import EVENTS_STREAM
from gateway.subjects import EVENTS_PREFIX

ALL_EVENTS = f"{EVENTS_PREFIX}.>"
_NO_MESSAGE = 10037  # JetStream's "no message found" (as opposed to "no such stream")


async def replay(
    client: Client, on_event: Callable[[Delivery, Msg], bool], subject: str = ALL_EVENTS
) -> None:
    """Hand every message of the log on `subject` (a filter such as `onestop.events.21550.>`),
    up to the last one stored when the replay starts, in log order, to `on_event` with where it
    stands in the log, until it returns False. Raises what `on_event` raised, and nats errors
    when the log cannot be read.
    """
    js = client.jetstream()
    last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
    if last and subject != ALL_EVENTS:
        try:  # the end of this filter's share of the log, not of the whole log
            last = (await js.get_last_msg(EVENTS_STREAM, subject)).seq or 0
        except NotFoundError as e:
            if e.err_code != _NO_MESSAGE:
                raise
            last = 0
    if last == 0:
        return
    done = asyncio.Event()
    failed: list[Exception] = []

    async def deliver(msg: Msg) -> None:
        if done.is_set():
            return
        delivery = delivery_of(msg.reply)
        try:
            go_on = on_event(delivery, msg)
        except Exception as e:  # raised to the caller, not lost in nats-py's error callback
            failed.append(e)
            go_on = False
        if not go_on or delivery.seq >= last:
            done.set()

    sub = await js.subscribe(
        subject,
        cb=deliver,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        pending_msgs_limit=100_000,
        pending_bytes_limit=256 * 1024 * 1024,
    )
    try:
        # A one-shot command's connection closes for good when the server goes: stop waiting.
        while not done.is_set():
            if client.is_closed:
                raise nats.errors.ConnectionClosedError
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
        # The server would drop the ephemeral consumer seconds later anyway; do not leave it.
        with contextlib.suppress(nats.errors.Error):
            await js.delete_consumer(EVENTS_STREAM, (await sub.consumer_info()).name)
    if failed:
        raise failed[0]
