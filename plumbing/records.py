"""Interconnection records (bucket ONESTOP_DELIVERIES): what was delivered to the province and
what it sent that changes no lifecycle, one key per dossier and message, never in the event log.

Defined once here: the delivery worker writes outbound ones, the inbound handler inbound ones,
and `history` and `status` read both.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from plumbing.subjects import encode_key
from schemas.interconnect import EnvelopeKind

RECORDS_BUCKET = "ONESTOP_DELIVERIES"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    PARKED = "parked"


class DeliveryRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One outbound envelope's delivery, for the operator's dossier history."""

    direction: str = "out"
    message_id: str
    kind: EnvelopeKind
    unit: str
    dossier_id: str
    event_seq: int
    """The event-log sequence of the event the envelope was made from."""
    status: DeliveryStatus
    attempts: int = 0
    first_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    acknowledged_at: datetime | None = None
    last_error: str | None = None
    resumed_at: datetime | None = None
    """Set by `lienthong resume-delivery`: the park clock starts again from here."""


class InboundRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A province message that changes no lifecycle, kept for the dossier's history."""

    direction: str = "in"
    message_id: str
    kind: EnvelopeKind
    unit: str
    dossier_id: str
    sent_at: datetime
    received_at: datetime
    note: str | None = None


def record_key(unit: str, dossier_id: str, direction: str, message_id: str) -> str:
    return f"{unit}.{encode_key(dossier_id)}.{direction}.{encode_key(message_id)}"


async def records_bucket(client: Client, replicas: int = 1) -> KeyValue:
    js = client.jetstream()
    try:
        return await js.key_value(RECORDS_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(
            KeyValueConfig(
                bucket=RECORDS_BUCKET,
                description="lienthong interconnection records, both ways, per dossier",
                storage=StorageType.FILE,
                replicas=replicas,
                history=1,
            )
        )
