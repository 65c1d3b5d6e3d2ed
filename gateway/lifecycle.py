"""The lifecycle rules of CONTRACT section 3, as a pure fold over one entity's events.

The state after each accepted dossier event travels with that event in the log (a header), so
the gateway learns a dossier's whole state from one read of its last message, whichever
instance appended it and however long ago.
"""

from __future__ import annotations

import msgspec

from gateway.refusals import Conflict, UnknownEntity
from schemas.events import (
    DossierDeadlineChanged,
    DossierEvent,
    DossierReceived,
    DossierResolved,
    DossierResultReturned,
    DossierSupplementRequested,
    DossierTransferred,
    DossierWithdrawn,
    Event,
    event_type,
)
from schemas.lifecycle import DossierState, DossierStatus


class EntityState(msgspec.Struct, frozen=True, kw_only=True):
    """What the log holds for one entity: the sequence of its last event, and a dossier's state."""

    last_seq: int = 0
    dossier: DossierState | None = None

    @property
    def exists(self) -> bool:
        return self.last_seq > 0


def apply(state: EntityState, event: Event) -> DossierState | None:
    """The dossier state after `event`, or raise the refusal the lifecycle calls for.

    Documents and copies have no state beyond existing: each is issued or certified once.
    """
    if not isinstance(event, DossierEvent):
        if state.exists:
            raise Conflict(
                f"{event_type(event)} for this id was already accepted; "
                "each document or certification is recorded once"
            )
        return None
    dossier = state.dossier
    if isinstance(event, DossierReceived):
        if dossier is not None:
            raise Conflict("this dossier was already received; dossier.received comes once")
        return DossierState(
            status=DossierStatus.OPEN, received_at=event.occurred_at, due_at=event.due_at
        )
    if dossier is None:
        raise UnknownEntity(
            f"no dossier {event.dossier_id!r} was received by this unit; "
            "submit its dossier.received first"
        )
    if event.occurred_at < dossier.received_at:
        raise Conflict(
            "occurred_at is before the dossier was received; a dossier's events cannot "
            "precede its receipt",
            field="occurred_at",
        )
    if isinstance(event, DossierResultReturned):
        if dossier.status is DossierStatus.RETURNED:
            raise Conflict("the result of this dossier was already returned; it is returned once")
        if dossier.status is not DossierStatus.RESOLVED:
            raise Conflict("a result can be returned only after dossier.resolved")
        return msgspec.structs.replace(dossier, status=DossierStatus.RETURNED)
    if dossier.status is not DossierStatus.OPEN:
        raise Conflict(
            f"the dossier is already {dossier.status.value}; "
            f"{event_type(event)} is allowed only while it is open"
        )
    if isinstance(event, DossierDeadlineChanged):
        return msgspec.structs.replace(dossier, due_at=event.due_at)
    if isinstance(event, DossierTransferred):
        return msgspec.structs.replace(
            dossier, interconnect=dossier.interconnect or event.interconnect
        )
    if isinstance(event, DossierResolved):
        return msgspec.structs.replace(dossier, status=DossierStatus.RESOLVED)
    if isinstance(event, DossierWithdrawn):
        return msgspec.structs.replace(dossier, status=DossierStatus.WITHDRAWN)
    assert isinstance(event, DossierSupplementRequested)
    return dossier
