"""Section 5 of CONTRACT.md: interconnection envelopes between a unit and its province."""

from __future__ import annotations

import enum
from typing import Annotated, TypeAlias

import msgspec

from schemas.events import (
    AgencyCode,
    Applicant,
    Channel,
    EntityId,
    Note,
    Outcome,
    ProcedureCode,
    SealedApplicant,
    ServiceLevel,
    Timestamp,
    UnitCode,
)


class EnvelopeKind(enum.StrEnum):
    TRANSFER = "transfer"  # unit → province
    STATUS = "status"  # both ways
    RECEIPT = "receipt"  # province → unit
    SUPPLEMENT_REQUEST = "supplement_request"  # province → unit
    RESULT = "result"  # province → unit
    REJECTED = "rejected"  # province → unit


OUTBOUND_KINDS = frozenset({EnvelopeKind.TRANSFER, EnvelopeKind.STATUS})
INBOUND_KINDS = frozenset(
    {
        EnvelopeKind.RECEIPT,
        EnvelopeKind.STATUS,
        EnvelopeKind.SUPPLEMENT_REQUEST,
        EnvelopeKind.RESULT,
        EnvelopeKind.REJECTED,
    }
)


class TransferBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The dossier's facts; `applicant` only when the province is entitled to it."""

    procedure_code: ProcedureCode
    channel: Channel
    service_level: ServiceLevel | None
    received_at: Timestamp
    due_at: Timestamp
    to_agency: AgencyCode
    applicant: Applicant | None = None
    sealed_applicant: Annotated[
        SealedApplicant | None,
        msgspec.Meta(
            description="Extension: in the gateway's outbox only (ciphertext, so an erasure "
            "reaches a transfer still waiting); opened into `applicant` as it is sent, never "
            "sent itself"
        ),
    ] = None


class ResultBody(msgspec.Struct, frozen=True, kw_only=True):
    outcome: Outcome
    resolved_at: Timestamp


class NoteBody(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """For `status`, `supplement_request`, `rejected`, `receipt`.

    Outbound `status` also names the lifecycle event it reports (an extension of the contract).
    """

    note: Note | None = None
    event_type: str | None = None
    occurred_at: Timestamp | None = None


Body: TypeAlias = TransferBody | ResultBody | NoteBody


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    message_id: EntityId
    kind: EnvelopeKind
    unit: UnitCode
    dossier_id: EntityId
    sent_at: Timestamp
    body: msgspec.Raw
    """Decoded by `kind` with `schemas.codec.decode_body`."""


class DeliveryAck(msgspec.Struct, frozen=True, kw_only=True):
    """The receiver's answer: `{"ok": true}` and nothing else counts as delivered."""

    ok: bool
