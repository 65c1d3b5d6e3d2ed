"""Exporting a period's events from the log (CONTRACT section 7), as JSON Lines.

One line per event, in log order: `{"seq": ..., "stored_at": ..., "event": {...}}`. The events
are those whose `occurred_at` falls in the period (Vietnam's calendar, as reports count them),
of one unit and every unit below it in the registry, or of every unit. Each event is re-encoded
from its decoded Struct without `applicant`: personal data never leaves where it is not needed.

Reading only: the log is replayed by `plumbing.replay` (an ephemeral ordered consumer,
deleted when done); nothing is written to it and nothing is sent to the province.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from plumbing.jetstream import Delivery
from plumbing.replay import ALL_EVENTS, Unreadable, read_event, replay
from plumbing.subjects import EVENTS_PREFIX
from schemas.events import Event
from schemas.periods import period_index, period_of
from schemas.registry import Registry

PERSONAL_FIELDS = frozenset({"applicant", "sealed_applicant"})
"""Fields an export leaves out (CONTRACT section 3: the applicant is personal data)."""


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """Which events an export takes: those of `period` and of the units in `units` (None: all)."""

    period: str
    unit: str | None
    units: frozenset[str] | None
    subject: str
    """The subject filter of the replay: one unit's own subjects when nothing is below it."""


def selection(registry: Registry, period: str, unit: str | None = None) -> Selection:
    """The selection of `period` (YYYY-MM) and `unit` (None: every unit); ValueError if either
    is not one (a unit must be in the registry, which says what is below it)."""
    period_index(period)  # raises ValueError for anything but YYYY-MM
    if unit is None:
        return Selection(period=period, unit=None, units=None, subject=ALL_EVENTS)
    if unit not in registry:
        raise ValueError(f"unit {unit} is not in the registry (give the right --registry)")
    below = frozenset(c for c in registry.codes() if unit in registry.report_units(c))
    # A ward's events are all on its own subjects; a city's or province's are spread over its
    # units', so those read the whole log and pick here.
    subject = f"{EVENTS_PREFIX}.{unit}.>" if below == {unit} else ALL_EVENTS
    return Selection(period=period, unit=unit, units=below, subject=subject)


def selected(event: Event, chosen: Selection) -> bool:
    if chosen.units is not None and event.unit not in chosen.units:
        return False
    return period_of(event.occurred_at) == chosen.period


def stored_at(stored_ns: int) -> str:
    """JetStream's stored time as RFC 3339 in UTC, to the nanosecond it keeps."""
    seconds, nanos = divmod(stored_ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def without_personal_data(event: Event) -> dict[str, Any]:
    fields: dict[str, Any] = msgspec.to_builtins(event)
    for name in PERSONAL_FIELDS:
        fields.pop(name, None)
    return fields


class ExportLine(msgspec.Struct, frozen=True):
    seq: int
    stored_at: str
    event: dict[str, Any]


_ENCODER = msgspec.json.Encoder()


def export_line(seq: int, stored_ns: int, event: Event) -> bytes:
    """One line of the export, newline included."""
    line = ExportLine(seq, stored_at(stored_ns), without_personal_data(event))
    return _ENCODER.encode(line) + b"\n"


async def export(
    client: Client,
    chosen: Selection,
    out: IO[bytes],
    on_unreadable: Callable[[Unreadable], None] | None = None,
) -> int:
    """Write the chosen events of the log to `out`; how many were written. A message that is
    not an event is handed to `on_unreadable` and skipped: the export goes on."""
    written = 0

    def take(delivery: Delivery, msg: Msg) -> bool:
        nonlocal written
        event = read_event(delivery, msg)
        if isinstance(event, Unreadable):
            if on_unreadable is not None:
                on_unreadable(event)
            return True
        if selected(event, chosen):
            out.write(export_line(delivery.seq, delivery.stored_ns, event))
            written += 1
        return True

    await replay(client, take, chosen.subject)
    return written
