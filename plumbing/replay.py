"""Replaying the event log for audits (CONTRACT section 7): rebuild, export, verify.

An ordered consumer (ephemeral, and deleted when done, so it leaves nothing behind and also works
on a copied log) reads ONESTOP_EVENTS (or another stream: the reports' revisions) in log order.
Nothing is written and nothing is sent, so an operator's read-only rights are enough.

A message that is not an event this version can read (anything appended around the gateway) is
an `Unreadable`, never an exception: every audit reports it and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from plumbing.jetstream import Delivery, delivery_of
from plumbing.streams import EVENTS_STREAM
from plumbing.subjects import EVENTS_PREFIX
from schemas.codec import EVENT_DECODER
from schemas.events import Event

ALL_EVENTS = f"{EVENTS_PREFIX}.>"
_NO_MESSAGE = 10037  # JetStream's "no message found" (as opposed to "no such stream")


class Unreadable(msgspec.Struct, frozen=True, kw_only=True):
    """A message of the log that is not an event this version can read."""

    seq: int
    subject: str
    why: str

    def line(self) -> str:
        return f"message {self.seq} on {self.subject} is not an event ({self.why}): skipped"


def read_event(delivery: Delivery, msg: Msg) -> Event | Unreadable:
    """The event a message of the log holds, or why it holds none."""
    try:
        return EVENT_DECODER.decode(msg.data)
    except msgspec.DecodeError as e:  # not JSON, or not an event (ValidationError is one too)
        return Unreadable(seq=delivery.seq, subject=msg.subject, why=str(e))


async def caught_up(
    client: Client,
    position: Callable[[], int],
    who: str,
    *,
    busy: Callable[[], bool] = lambda: False,
    timeout: float = 60.0,
) -> None:
    """Until a reader of the log is at the log's last sequence as it is now (`position()`) and
    done with it (`busy()` false); TimeoutError naming `who` after `timeout` seconds."""
    target = (await client.jetstream().stream_info(EVENTS_STREAM)).state.last_seq
    deadline = time.monotonic() + timeout
    while position() < target or busy():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{who} at {position()}, log at {target}")
        await asyncio.sleep(0.05)


async def last_seq(client: Client, subject: str = ALL_EVENTS, stream: str = EVENTS_STREAM) -> int:
    """The sequence of the last message on `subject` in `stream` now (0: none)."""
    js = client.jetstream()
    last: int = (await js.stream_info(stream)).state.last_seq
    if last and subject != ALL_EVENTS:
        try:  # the end of this filter's share of the stream, not of the whole stream
            last = (await js.get_last_msg(stream, subject)).seq or 0
        except NotFoundError as e:
            if e.err_code != _NO_MESSAGE:
                raise
            last = 0
    return last


async def replay(
    client: Client,
    on_event: Callable[[Delivery, Msg], bool],
    subject: str = ALL_EVENTS,
    *,
    stream: str = EVENTS_STREAM,
) -> None:
    """Hand every message of `stream` (the log) on `subject` (a filter such as
    `onestop.events.21550.>`), up to the last one stored when the replay starts, in order, to
    `on_event` with where it stands, until it returns False. Raises what `on_event` raised, and
    nats errors when the stream cannot be read.
    """
    js = client.jetstream()
    last = await last_seq(client, subject, stream)
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
        stream=stream,
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
            await js.delete_consumer(stream, (await sub.consumer_info()).name)
    if failed:
        raise failed[0]
