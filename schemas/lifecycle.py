"""A dossier's place in its lifecycle (CONTRACT section 3), as the event log's header carries it
after each event: what the write side judges by and the outbox reads."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec


class DossierStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"
    RETURNED = "returned"


class DossierState(msgspec.Struct, frozen=True, kw_only=True):
    status: DossierStatus
    received_at: datetime
    due_at: datetime
    interconnect: bool = False
    """Transferred to the province with `interconnect: true`: later events are sent there too."""
