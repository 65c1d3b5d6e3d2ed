"""Rules of CONTRACT section 3 that relate an event's fields to each other or to the clock."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec

from schemas.events import Channel, DossierReceived, Event

CLOCK_SKEW_ALLOWED = timedelta(minutes=5)

_SEVEN_DIGITS = re.compile(rb"\.\d{7}")
_FRACTION = re.compile(r"(\.\d{6})\d+")
S = TypeVar("S", bound=msgspec.Struct)


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    message: str


def field_problem(event: Event, now: datetime) -> FieldProblem | None:
    """The first rule of section 3 the event breaks on its own, or None.

    Only the contract's rules: a `dossier.deadline_changed` may set a `due_at` before its own
    `occurred_at` (a desk keys in an extension after the fact), so nothing checks that.
    """
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
        if event.sealed_applicant is not None:
            return FieldProblem(
                "sealed_applicant",
                "sealed_applicant is the gateway's own form of the applicant in its log; "
                "submit the plain applicant object",
            )
    return None


def to_microseconds(decoded: S, raw: bytes | msgspec.Raw) -> S:
    """`decoded` (from `raw`) with each timestamp that had more than 6 fractional digits cut to
    6, not rounded.

    The contract allows any fractional seconds (Go's RFC3339Nano sends 9 digits); the gateway
    keeps microseconds. msgspec rounds the rest, and 2021-04-30T16:59:59.9999996Z would become
    17:00:00Z, in May; cutting never crosses a whole second, so never a period's edge. Seven
    digits in a row after a dot are rare in an event, so only then is it read a second time.
    """
    if _SEVEN_DIGITS.search(raw) is None:
        return decoded
    fields = msgspec.json.decode(raw)
    cut = {
        name: _FRACTION.sub(r"\1", value, count=1)
        for name in decoded.__struct_fields__
        if isinstance(getattr(decoded, name), datetime)
        and isinstance(value := fields.get(name), str)
        and _FRACTION.search(value)
    }
    if not cut:
        return decoded
    return msgspec.json.decode(msgspec.json.encode({**fields, **cut}), type=type(decoded))
