"""For operators: what is still owed to the province, per dossier, each delivery's record, and
setting parked deliveries back to pending (`lienthong history`, `status`, `resume-delivery`)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

import msgspec
import nats.js.errors
from nats.aio.client import Client
from nats.js.kv import KeyValue

from consumers.interconnect.envelope_head import HEAD, RECORD, outbound_key
from plumbing.errors import LogUnavailable
from plumbing.jetstream import JetStream, StoredMessage
from plumbing.last_values import kv_values
from plumbing.records import RECORDS_BUCKET, DeliveryRecord, DeliveryStatus
from plumbing.streams import OUTBOX_PREFIX, OUTBOX_STREAM
from plumbing.subjects import decode_key, encode_key
from schemas.periods import now_vn


async def _bucket(client: Client) -> KeyValue | None:
    try:
        kv: KeyValue = await client.jetstream().key_value(RECORDS_BUCKET)
    except nats.js.errors.NotFoundError:
        return None
    return kv


async def records_for_dossier(client: Client, unit: str, dossier_id: str) -> list[DeliveryRecord]:
    """The outbound delivery records of one dossier, in the order of the events they came from."""
    pattern = f"{unit}.{encode_key(dossier_id)}.out.>"
    records = [RECORD.decode(v) for v in await kv_values(client, RECORDS_BUCKET, pattern)]
    records.sort(key=lambda r: r.event_seq)
    return records


class PendingDossier(msgspec.Struct, frozen=True, kw_only=True):
    """A dossier with messages still owed to the province, and its head's record."""

    unit: str
    dossier_id: str
    pending: int
    oldest_stored_at: datetime
    head_message_id: str
    head: DeliveryRecord | None


async def pending_dossiers(
    client: Client, unit: str | None = None, dossier_id: str | None = None, timeout: float = 5.0
) -> list[PendingDossier]:
    """Dossiers with messages in the outbox, from its per-subject counts (one read each)."""
    filter_subject = (
        f"{OUTBOX_PREFIX}.{unit or '*'}.{encode_key(dossier_id) if dossier_id else '*'}"
    )
    counts = await _subject_counts(client, filter_subject, timeout)
    kv = await _bucket(client)
    direct = JetStream(client, timeout)
    gate = asyncio.Semaphore(64)

    async def one(subject: str, count: int) -> PendingDossier | None:
        async with gate:
            first = await direct.next_on_subject(OUTBOX_STREAM, subject, 1)
            if first is None:
                return None
            head = HEAD.decode(first.data)
            record = None
            if kv is not None:
                key = outbound_key(head.unit, head.dossier_id, head.message_id)
                with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                    entry = await kv.get(key)
                    record = RECORD.decode(entry.value) if entry.value else None
        _, _, unit_token, key_token = subject.split(".", 3)
        return PendingDossier(
            unit=unit_token,
            dossier_id=decode_key(key_token),
            pending=count,
            oldest_stored_at=_stored_at(first),
            head_message_id=head.message_id,
            head=record,
        )

    found = await asyncio.gather(*(one(s, n) for s, n in sorted(counts.items())))
    return [p for p in found if p is not None]


class _SubjectState(msgspec.Struct):
    subjects: dict[str, int] | None = None


class _SubjectPage(msgspec.Struct):
    total: int = 0
    state: _SubjectState | None = None
    error: dict[str, Any] | None = None


_SUBJECT_PAGE = msgspec.json.Decoder(_SubjectPage)


async def _subject_counts(client: Client, filter_subject: str, timeout: float) -> dict[str, int]:
    """Messages per outbox subject; paged, as the server sends at most 100,000 per answer."""
    counts: dict[str, int] = {}
    while True:
        request = msgspec.json.encode({"subjects_filter": filter_subject, "offset": len(counts)})
        reply = await client.request(
            f"$JS.API.STREAM.INFO.{OUTBOX_STREAM}", request, timeout=timeout
        )
        page = _SUBJECT_PAGE.decode(reply.data)
        if page.error is not None:
            if page.error.get("err_code") == 10059:  # no outbox yet: nothing owed
                return {}
            raise LogUnavailable(f"the outbox could not be read: {page.error.get('description')}")
        subjects = page.state.subjects if page.state is not None else None
        if not subjects:
            return counts
        counts.update(subjects)
        if len(counts) >= page.total:
            return counts


def _stored_at(message: StoredMessage) -> datetime:
    stamp: datetime = msgspec.json.decode(msgspec.json.encode(message.time), type=datetime)
    return stamp


async def resume_parked(
    client: Client, unit: str | None = None, dossier_id: str | None = None
) -> list[DeliveryRecord]:
    """Set parked records back to pending (the worker notices and retries); those resumed."""
    kv = await _bucket(client)
    if kv is None:
        return []
    resumed: list[DeliveryRecord] = []
    for p in await pending_dossiers(client, unit, dossier_id):
        record = p.head
        if record is None or record.status is not DeliveryStatus.PARKED:
            continue
        key = outbound_key(record.unit, record.dossier_id, record.message_id)
        entry = await kv.get(key)
        current = RECORD.decode(entry.value) if entry.value else None
        if current is None or current.status is not DeliveryStatus.PARKED:
            continue
        again = msgspec.structs.replace(current, status=DeliveryStatus.PENDING, resumed_at=now_vn())
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
            await kv.update(key, msgspec.json.encode(again), last=entry.revision)
            resumed.append(again)
    return resumed
