"""One dossier's whole history, for operators (CONTRACT section 7): its events in the log and
its interconnection records both ways (deliveries to the province, messages from it), and the
operators' actions on it (consumers.audit.operations).

Personal data is never shown: an applicant is reported only as present, with its erasures and
disclosures (consumers.audit.erasure); `--show-personal-data` opens it apart, recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from nats.aio.client import Client

from consumers.audit.erasure import personal_data_entries
from consumers.audit.operations import operator_actions, touching
from consumers.interconnect.pending import records_for_dossier
from plumbing.headers import ORIGIN, ORIGIN_MESSAGE_ID
from plumbing.jetstream import JetStream, StoredMessage
from plumbing.last_values import kv_values
from plumbing.records import RECORDS_BUCKET, InboundRecord
from plumbing.streams import EVENTS_STREAM
from plumbing.subjects import encode_key, event_subject
from schemas.codec import EVENT_DECODER
from schemas.events import Entity

_INBOUND = msgspec.json.Decoder(InboundRecord)


class HistoryLine(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime | None
    """When it happened (an event's occurred_at; a record's acknowledgement or receipt)."""
    source: str
    """`log` (an event, with its stream sequence), `to province`, `from province` or
    `operator` (an operator's action on the dossier, consumers.audit.operations)."""
    what: str
    detail: str


def _event_detail(event: dict[str, Any], headers: dict[str, str]) -> str:
    personal = {"applicant", "sealed_applicant"}
    skip = {"type", "event_id", "unit", "occurred_at", "dossier_id", *personal}
    parts = [f"{k}={v}" for k, v in event.items() if k not in skip and v is not None]
    if event.get("applicant") or event.get("sealed_applicant"):
        parts.append("applicant=<personal data, not shown>")
    if headers.get(ORIGIN) == "province":
        parts.append(f"from the province (message {headers.get(ORIGIN_MESSAGE_ID)})")
    parts.append(f"event_id={event.get('event_id')}")
    return ", ".join(parts)


def _event_line(msg: StoredMessage) -> HistoryLine:
    """An event of the log, or what is wrong with a message that is not one (shown, not fatal:
    anything appended around the gateway is part of the dossier's history too)."""
    source = f"log #{msg.seq}"
    try:
        event = EVENT_DECODER.decode(msg.data)
    except msgspec.DecodeError as e:
        return HistoryLine(at=None, source=source, what="not an event", detail=f"skipped: {e}")
    fields: dict[str, Any] = msgspec.to_builtins(event)
    return HistoryLine(
        at=event.occurred_at,
        source=source,
        what=fields["type"],
        detail=_event_detail(fields, msg.headers),
    )


async def dossier_history(client: Client, unit: str, dossier_id: str) -> list[HistoryLine]:
    js = JetStream(client, 5.0)
    subject = event_subject(unit, Entity.DOSSIER, dossier_id)
    lines: list[HistoryLine] = []
    seq = 1
    while (msg := await js.next_on_subject(EVENTS_STREAM, subject, seq)) is not None:
        lines.append(_event_line(msg))
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
    for entry in await personal_data_entries(client, unit, dossier_id):
        lines.append(
            HistoryLine(at=entry.at, source="personal data", what=entry.what, detail=entry.detail)
        )
    for action in touching(await operator_actions(client), unit, dossier_id):
        source = "NATS user" if action.nats_user else "OS user"
        lines.append(
            HistoryLine(
                at=action.at,
                source="operator",
                what=action.command.split()[0],
                detail=f"`lienthong {action.command}` by {source} {action.who}",
            )
        )
    return lines


def render(lines: list[HistoryLine]) -> str:
    out = []
    for line in lines:
        at = line.at.isoformat(timespec="seconds") if line.at else "-"
        out.append(f"{at:<26} {line.source:<14} {line.what:<28} {line.detail}")
    return "\n".join(out) + "\n"
