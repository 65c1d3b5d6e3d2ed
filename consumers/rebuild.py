"""Rebuilding reports from the log alone, for audits (CONTRACT section 7).

`replay` reads ONESTOP_EVENTS with an ordered consumer (ephemeral, and deleted when done, so it
leaves nothing behind and also works on a copied log); `rebuild` replays it into a fresh
`ReportBook`, the same pure rules the live projector uses, and `lienthong export` replays it too.
Given a moment, only events stored by then are replayed: the report as it stood at that time.
Nothing is published and nothing is sent to the province.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from consumers.periods import period_end
from consumers.report_rules import ReportBook
from consumers.report_store import Published
from gateway.jetstream import Delivery, delivery_of
from gateway.registry import Registry
from gateway.streams import EVENTS_STREAM
from gateway.subjects import EVENTS_PREFIX
from schemas.codec import EVENT_DECODER
from schemas.report import Figures

ALL_EVENTS = f"{EVENTS_PREFIX}.>"
_NO_MESSAGE = 10037  # JetStream's "no message found" (as opposed to "no such stream")


async def replay(
    client: Client, on_event: Callable[[Delivery, bytes], bool], subject: str = ALL_EVENTS
) -> None:
    """Hand every message of the log on `subject` (a filter such as `onestop.events.21550.>`),
    up to the last one stored when the replay starts, in log order, to `on_event`, until it
    returns False. Raises what `on_event` raised, and nats errors when the log cannot be read.
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
            go_on = on_event(delivery, msg.data)
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


async def rebuild(
    client: Client, registry: Registry, *, stored_by: datetime | None = None
) -> ReportBook:
    """Every report's figures from the log alone (only events stored by `stored_by`, if given)."""
    book = ReportBook()
    limit = int(stored_by.timestamp() * 1e9) if stored_by is not None else None
    chains: dict[str, tuple[str, ...]] = {}

    def apply(delivery: Delivery, data: bytes) -> bool:
        if limit is not None and delivery.stored_ns > limit:
            return False
        event = EVENT_DECODER.decode(data)
        if event.unit not in chains:
            known = event.unit in registry
            chains[event.unit] = registry.report_units(event.unit) if known else (event.unit,)
        book.apply(event, chains[event.unit])
        return True

    await replay(client, apply)
    return book


class Difference(msgspec.Struct, frozen=True):
    unit: str
    period: str
    rebuilt: Figures | None
    published: Figures | None


def compare(
    book: ReportBook, published: dict[tuple[str, str], Published], now: datetime
) -> list[Difference]:
    """Reports whose published figures differ from the rebuild, or exist on one side only.

    Provisional reports are compared as of their own `generated_at`, final ones as final.
    """
    out: list[Difference] = []
    rebuilt_keys = {(u, p) for u in book.units() for p in book.periods(u)}
    for unit, period in sorted(rebuilt_keys | set(published)):
        seen = published.get((unit, period))
        rebuilt: Figures | None = None
        if (unit, period) in rebuilt_keys:
            as_of = None
            if seen is not None and not seen.report.final:
                as_of = seen.report.generated_at
            elif now < period_end(period):
                as_of = now
            rebuilt = book.figures(unit, period, as_of)
        figures = seen.report.figures if seen is not None else None
        if rebuilt != figures:
            out.append(Difference(unit, period, rebuilt, figures))
    return out
