"""What the outbound stages and the operators' queries read of an outbox message, and where its
delivery record lies."""

from __future__ import annotations

import msgspec

from plumbing.records import DeliveryRecord, record_key
from schemas.interconnect import EnvelopeKind


class EnvelopeHead(msgspec.Struct):
    """The envelope's fields the worker needs; the bytes themselves are sent untouched."""

    message_id: str
    kind: EnvelopeKind
    unit: str
    dossier_id: str


HEAD = msgspec.json.Decoder(EnvelopeHead)
"""Decodes an outbox message's head."""

RECORD = msgspec.json.Decoder(DeliveryRecord)


def outbound_key(unit: str, dossier_id: str, message_id: str) -> str:
    return record_key(unit, dossier_id, "out", message_id)
