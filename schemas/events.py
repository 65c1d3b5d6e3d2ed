"""Section 3 of CONTRACT.md: the events a unit's system submits, as one tagged union on `type`.

Shape only: each Struct says what a well-formed event looks like. Rules that relate fields to each
other (an online dossier needs a level, due after receipt) are in `schemas.rules`; rules that need
the log (received twice, unknown dossier) are the gateway's.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, ClassVar, Literal, TypeAlias

import msgspec

Timestamp: TypeAlias = Annotated[
    datetime,
    msgspec.Meta(tz=True, description="RFC 3339 with an offset (Z or +07:00)"),
]
EntityId: TypeAlias = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
UnitCode: TypeAlias = Annotated[
    str,
    msgspec.Meta(
        min_length=2,
        max_length=16,
        description="official administrative unit code: 2 digits province, 3 city, 5 ward",
    ),
]
ProcedureCode: TypeAlias = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
AgencyCode: TypeAlias = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Note: TypeAlias = Annotated[str, msgspec.Meta(max_length=2000)]
ServiceLevel: TypeAlias = Literal[2, 3, 4]


class Entity(enum.StrEnum):
    """What an event is about; the `<entity>` token of its log subject."""

    DOSSIER = "dossier"
    DOCUMENT = "document"
    COPY = "copy"


class Channel(enum.StrEnum):
    DIRECT = "direct"
    ONLINE = "online"
    POSTAL = "postal"


class DeadlineReason(enum.StrEnum):
    EXTENSION = "extension"
    SUPPLEMENT = "supplement"


class Outcome(enum.StrEnum):
    APPROVED = "approved"
    REFUSED = "refused"


class ReturnMethod(enum.StrEnum):
    COUNTER = "counter"
    POSTAL = "postal"
    ONLINE = "online"


class Applicant(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Personal data: stored in the log, never logged, reported or sent unless entitled."""

    name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    id_number: Annotated[str, msgspec.Meta(max_length=32)] | None = None

    def __repr__(self) -> str:  # a stray repr in a log line must not leak it
        return "Applicant(<personal data>)"

    __str__ = __repr__


class SealedApplicant(msgspec.Struct, frozen=True, kw_only=True):
    """The applicant as the event log holds it (a compatible extension of CONTRACT section 3):
    written by the gateway in place of `applicant`, never submitted by a unit.

    `ciphertext` is the applicant's JSON sealed with AES-256-GCM under the dossier's own key
    (the unit and dossier id as associated data, so it cannot be moved to another dossier);
    `digest` is an HMAC-SHA256 of the same JSON under that key, so that a resend is compared
    without decrypting. Destroying the dossier's key (`lienthong erase`) leaves both unreadable
    and untestable for ever, while the log and its seals stay as they were.
    """

    alg: Literal["A256GCM"] = "A256GCM"
    nonce: bytes
    ciphertext: bytes
    digest: bytes


class EventBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    event_id: EntityId
    unit: UnitCode
    occurred_at: Timestamp

    entity: ClassVar[Entity]

    @property
    def entity_id(self) -> str:
        raise NotImplementedError


class DossierEvent(EventBase, frozen=True, kw_only=True):
    dossier_id: EntityId
    entity: ClassVar[Entity] = Entity.DOSSIER

    @property
    def entity_id(self) -> str:
        return self.dossier_id


class DossierReceived(DossierEvent, frozen=True, kw_only=True, tag="dossier.received"):
    procedure_code: ProcedureCode
    channel: Channel
    due_at: Timestamp
    service_level: ServiceLevel | None = None
    applicant: Applicant | None = None
    sealed_applicant: Annotated[
        SealedApplicant | None,
        msgspec.Meta(
            description="Extension: in the gateway's log only, in place of `applicant` (sealed "
            "under the dossier's key); a unit never sends it, and submitting it is refused"
        ),
    ] = None


class DossierDeadlineChanged(
    DossierEvent, frozen=True, kw_only=True, tag="dossier.deadline_changed"
):
    due_at: Timestamp
    reason: DeadlineReason


class DossierSupplementRequested(
    DossierEvent, frozen=True, kw_only=True, tag="dossier.supplement_requested"
):
    note: Note | None = None


class DossierTransferred(DossierEvent, frozen=True, kw_only=True, tag="dossier.transferred"):
    to_agency: AgencyCode
    interconnect: bool


class DossierResolved(DossierEvent, frozen=True, kw_only=True, tag="dossier.resolved"):
    outcome: Outcome


class DossierWithdrawn(DossierEvent, frozen=True, kw_only=True, tag="dossier.withdrawn"):
    pass


class DossierResultReturned(DossierEvent, frozen=True, kw_only=True, tag="dossier.result_returned"):
    method: ReturnMethod


class DocumentIssued(EventBase, frozen=True, kw_only=True, tag="document.issued"):
    document_id: EntityId
    digitally_signed: bool
    sent_via_axis: bool
    entity: ClassVar[Entity] = Entity.DOCUMENT

    @property
    def entity_id(self) -> str:
        return self.document_id


class CopyCertified(EventBase, frozen=True, kw_only=True, tag="copy.certified"):
    certification_id: EntityId
    electronic: bool
    entity: ClassVar[Entity] = Entity.COPY

    @property
    def entity_id(self) -> str:
        return self.certification_id


Event: TypeAlias = (
    DossierReceived
    | DossierDeadlineChanged
    | DossierSupplementRequested
    | DossierTransferred
    | DossierResolved
    | DossierWithdrawn
    | DossierResultReturned
    | DocumentIssued
    | CopyCertified
)
"""Every event of CONTRACT section 3; decode with `schemas.codec.EVENT_DECODER`."""

EVENT_TYPES: tuple[type[EventBase], ...] = (
    DossierReceived,
    DossierDeadlineChanged,
    DossierSupplementRequested,
    DossierTransferred,
    DossierResolved,
    DossierWithdrawn,
    DossierResultReturned,
    DocumentIssued,
    CopyCertified,
)


def event_type(event: EventBase) -> str:
    """The `type` tag of an event, as on the wire."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
