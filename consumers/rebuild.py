"""Rebuilding reports from the log alone, for audits (CONTRACT section 7).

`rebuild` replays the log (consumers.replay) into a fresh `ReportBook`, the same pure rules
the live projector uses.
Given a moment, only events stored by then are replayed: the report as it stood at that time.
Nothing is published and nothing is sent to the province.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from consumers.periods import period_end
from consumers.replay import replay
from consumers.report_rules import ReportBook
from consumers.report_store import Published
from gateway.jetstream import Delivery
from gateway.registry import Registry
from schemas.codec import EVENT_DECODER
from schemas.report import Figures


async def rebuild(
    client: Client, registry: Registry, *, stored_by: datetime | None = None
) -> ReportBook:
    """Every report's figures from the log alone (only events stored by `stored_by`, if given)."""
    book = ReportBook()
    limit = int(stored_by.timestamp() * 1e9) if stored_by is not None else None
    chains: dict[str, tuple[str, ...]] = {}

    def apply(delivery: Delivery, msg: Msg) -> bool:
        if limit is not None and delivery.stored_ns > limit:
            return False
        event = EVENT_DECODER.decode(msg.data)
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
