"""Rules of CONTRACT section 3 that relate an event's fields to each other or to the clock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import msgspec

from schemas.events import Channel, DossierDeadlineChanged, DossierReceived, Event

CLOCK_SKEW_ALLOWED = timedelta(minutes=5)

_SEVEN_DIGITS = re.compile(rb"\.\d{7}")
_FINER_THAN_MICROSECONDS = re.compile(r"\.\d{7}")


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    message: str


def field_problem(event: Event, now: datetime) -> FieldProblem | None:
    """The first rule of section 3 the event breaks on its own, or None."""
    if event.occurred_at > now + CLOCK_SKEW_ALLOWED:
        return FieldProblem(
            "occurred_at",
            "occurred_at is more than 5 minutes ahead of the gateway's clock; "
            "check the desk system's clock and time zone",
        )
    if isinstance(event, DossierReceived):
        if event.channel is Channel.ONLINE and event.service_level not in (3, 4):
            return FieldProblem(
                "service_level",
                "a dossier received online needs service_level 3 or 4",
            )
        if event.due_at <= event.occurred_at:
            return FieldProblem("due_at", "due_at must be after occurred_at (the receipt)")
    if isinstance(event, DossierDeadlineChanged) and event.due_at <= event.occurred_at:
        return FieldProblem("due_at", "the new due_at must be after the change's occurred_at")
    return None


def timestamp_problem(event: msgspec.Struct, raw: bytes | msgspec.Raw) -> FieldProblem | None:
    """A timestamp of `event` (decoded from `raw`) with more than 6 fractional digits, or None.

    The decoder keeps microseconds and rounds the rest: 2021-04-30T16:59:59.9999996Z would be
    stored as 17:00:00Z, in May. Such a timestamp is refused rather than moved. Seven digits in
    a row after a dot are rare in an event, so only then is the event read a second time.
    """
    if _SEVEN_DIGITS.search(raw) is None:
        return None
    fields = msgspec.json.decode(raw)
    for name in event.__struct_fields__:
        value = fields.get(name)
        if (
            isinstance(getattr(event, name), datetime)
            and isinstance(value, str)
            and _FINER_THAN_MICROSECONDS.search(value)
        ):
            return FieldProblem(
                name,
                f"{name} has more than 6 digits after the seconds' decimal point; "
                "the gateway keeps microseconds: send at most 6 digits",
            )
    return None
