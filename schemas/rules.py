"""Rules of CONTRACT section 3 that relate an event's fields to each other or to the clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from schemas.events import Channel, DossierDeadlineChanged, DossierReceived, Event

CLOCK_SKEW_ALLOWED = timedelta(minutes=5)


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
