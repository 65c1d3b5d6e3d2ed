"""Section 6 of CONTRACT.md: the monthly report of a unit (or the roll-up of a city, province)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class NewByChannel(msgspec.Struct, frozen=True, kw_only=True):
    direct: int
    online: int
    postal: int


class Received(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    carried_over: int
    new: int
    new_by_channel: NewByChannel


class Resolved(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    early: int
    on_time: int
    late: int
    on_time_rate: float | None


class InProgress(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    within_deadline: int
    overdue: int


class OnlineProcedures(msgspec.Struct, frozen=True, kw_only=True):
    level3: int
    level4: int


class DossierFigures(msgspec.Struct, frozen=True, kw_only=True):
    received: Received
    resolved: Resolved
    withdrawn: int
    in_progress: InProgress
    returned_by_post: int
    online_procedures: OnlineProcedures


class DocumentFigures(msgspec.Struct, frozen=True, kw_only=True):
    issued: int
    signed_and_sent: int
    rate: float | None


class CopyFigures(msgspec.Struct, frozen=True, kw_only=True):
    certified: int
    electronic: int


class Figures(msgspec.Struct, frozen=True, kw_only=True):
    """Everything in a report that events decide: two equal Figures are the same report."""

    dossiers: DossierFigures
    documents: DocumentFigures
    copies: CopyFigures


class Report(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    unit: str
    period: str
    revision: int
    final: bool
    generated_at: datetime
    dossiers: DossierFigures
    documents: DocumentFigures
    copies: CopyFigures
    pending_sites: list[str] | None = None
    """Ward sites among the report's units whose events the city's log may not hold yet (the
    link is down, or the city is still catching up): the figures may still be revised. Absent
    when every site is caught up (an optional extension of CONTRACT section 6)."""

    @property
    def figures(self) -> Figures:
        return Figures(dossiers=self.dossiers, documents=self.documents, copies=self.copies)
