"""One dossier's whole history, for operators (CONTRACT section 7): its events in the log and
its interconnection records both ways (deliveries to the province, messages from it).

Personal data is never shown: an applicant is reported only as present.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from nats.aio.client import Client

from consumers.delivery import records_for_dossier
from gateway.event_log import ORIGIN, ORIGIN_MESSAGE_ID
from gateway.inbound import RECORDS_BUCKET, InboundRecord
from gateway.jetstream import JetStream
from gateway.last_values import kv_values
from gateway.streams import EVENTS_STREAM
from gateway.subjects import encode_key, event_subject
from schemas.events import Entity

_INBOUND = msgspec.json.Decoder(InboundRecord)


class HistoryLine(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime | None
    """When it happened (an event's occurred_at; a record's acknowledgement or receipt)."""
    source: str
    """`log` (an event, with its stream sequence), `to province` or `from province`."""
    what: str
    detail: str


def _event_detail(event: dict[str, Any], headers: dict[str, str]) -> str:
    skip = {"type", "event_id", "unit", "occurred_at", "dossier_id", "applicant"}
    parts = [f"{k}={v}" for k, v in event.items() if k not in skip and v is not None]
    if event.get("applicant"):
        parts.append("applicant=<personal data, not shown>")
    if headers.get(ORIGIN) == "province":
        parts.append(f"from the province (message {headers.get(ORIGIN_MESSAGE_ID)})")
    parts.append(f"event_id={event.get('event_id')}")
    return ", ".join(parts)


async def dossier_history(client: Client, unit: str, dossier_id: str) -> list[HistoryLine]:
    js = JetStream(client, 5.0)
    subject = event_subject(unit, Entity.DOSSIER, dossier_id)
    lines: list[HistoryLine] = []
    seq = 1
    while (msg := await js.next_on_subject(EVENTS_STREAM, subject, seq)) is not None:
        event = msgspec.json.decode(msg.data)
        lines.append(
            HistoryLine(
                at=msgspec.convert(event["occurred_at"], datetime),
                source=f"log #{msg.seq}",
                what=event["type"],
                detail=_event_detail(event, msg.headers),
            )
        )
        seq = msg.seq + 1
    for record in await records_for_dossier(client, unit, dossier_id):
        lines.append(
            HistoryLine(
                at=record.acknowledged_at or record.last_attempt_at or record.first_attempt_at,
                source="to province",
                what=record.kind.value,
                detail=(
                    f"message_id={record.message_id}, {record.status.value}, "
                    f"attempts={record.attempts}"
                    + (f", last error: {record.last_error}" if record.last_error else "")
                ),
            )
        )
    pattern = f"{unit}.{encode_key(dossier_id)}.in.>"
    for value in await kv_values(client, RECORDS_BUCKET, pattern):
        inbound = _INBOUND.decode(value)
        lines.append(
            HistoryLine(
                at=inbound.received_at,
                source="from province",
                what=inbound.kind.value,
                detail=f"message_id={inbound.message_id}"
                + (f", note: {inbound.note}" if inbound.note else ""),
            )
        )
    return lines


def render(lines: list[HistoryLine]) -> str:
    out = []
    for line in lines:
        at = line.at.isoformat(timespec="seconds") if line.at else "-"
        out.append(f"{at:<26} {line.source:<14} {line.what:<28} {line.detail}")
    return "\n".join(out) + "\n"
