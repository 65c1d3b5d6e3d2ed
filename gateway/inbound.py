"""Interconnection from the province to a unit: `onestop.inbound.<unit>` (CONTRACT section 5).

A `result` becomes `dossier.resolved` at `body.resolved_at` and a `supplement_request` becomes
`dossier.supplement_requested`, recorded through the same `Intake` as a unit's own events, so
they obey the same lifecycle and count in the unit's report. Their event_id is derived from the
`message_id`, so the event-id index deduplicates a resend however late it comes. `receipt`,
`status` and `rejected` change no lifecycle: they are kept as interconnection records of the
dossier (bucket ONESTOP_DELIVERIES, like outbound deliveries), never in the event log.
Events stored from here carry `Lienthong-Origin: province`, so they are never sent back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import msgspec
import structlog
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from gateway import metrics
from gateway.event_log import EventLog
from gateway.intake import Candidate, Intake
from gateway.refusals import (
    Conflict,
    Invalid,
    Malformed,
    Refusal,
    Unavailable,
    UnitMismatch,
    UnknownEntity,
    UnknownUnit,
)
from plumbing.errors import LogUnavailable
from plumbing.headers import ORIGIN, ORIGIN_MESSAGE_ID
from plumbing.records import InboundRecord, record_key
from plumbing.subjects import event_subject
from schemas.codec import ENCODER, decode_body, field_of, first_non_utf8_byte, plain_message
from schemas.events import DossierResolved, DossierSupplementRequested, Entity, Event
from schemas.ids import derived_id
from schemas.interconnect import INBOUND_KINDS, Envelope, EnvelopeKind, NoteBody, ResultBody
from schemas.registry import Registry
from schemas.replies import Accepted
from schemas.rules import field_problem, to_microseconds

OK = b'{"ok":true}'
UNREADABLE = "unreadable"
"""The kind counted for a message whose envelope could not be read."""


_ENVELOPE = msgspec.json.Decoder(Envelope)


def inbound_event_id(message_id: str) -> str:
    """The event_id of the event a province message becomes: stable, at most 128 chars."""
    return derived_id("province", message_id)


def decode_envelope(payload: bytes, unit: str, registry: Registry) -> Envelope:
    if first_non_utf8_byte(payload) is not None:
        raise Malformed("the envelope is not UTF-8 text")
    try:
        envelope = _ENVELOPE.decode(payload)
    except msgspec.ValidationError as e:
        if not isinstance(msgspec.json.decode(payload), dict):
            raise Malformed("the envelope must be a JSON object") from e
        field = field_of(e)
        raise Invalid(f"{field or 'envelope'}: {plain_message(e)}", field=field) from e
    except msgspec.DecodeError as e:  # ValidationError is a DecodeError: caught above first
        raise Malformed(f"the envelope is not valid JSON: {e}") from e
    envelope = to_microseconds(envelope, payload)
    if envelope.kind not in INBOUND_KINDS:
        raise Invalid(
            f"kind {envelope.kind.value!r} does not go from the province to a unit", field="kind"
        )
    if envelope.unit != unit:
        raise UnitMismatch(
            f"the envelope's unit {envelope.unit!r} differs from the subject's unit {unit!r}",
            field="unit",
        )
    if unit not in registry:
        raise UnknownUnit(f"unit {unit!r} is not in the gateway's registry", field="unit")
    return envelope


class InboundService:
    def __init__(
        self, intake: Intake, log: EventLog, records: KeyValue, registry: Registry
    ) -> None:
        self.intake = intake
        self.event_log = log
        self.records = records
        self.registry = registry
        self.log = structlog.get_logger("lienthong.inbound")

    async def receive(self, unit: str, payload: bytes) -> bytes:
        started = time.perf_counter()
        kind = UNREADABLE
        try:
            envelope = decode_envelope(payload, unit, self.registry)
            kind = envelope.kind.value
            stored_before = await self._store(envelope)
        except (Refusal, LogUnavailable) as error:
            refusal = error if isinstance(error, Refusal) else Unavailable(str(error))
            self._done(unit, kind, refusal.code.value, started)
            return ENCODER.encode(refusal.reply(None))
        self._done(unit, kind, "duplicate" if stored_before else "ok", started)
        return OK

    def _done(self, unit: str, kind: str, code: str, started: float) -> None:
        """One log line and one count per message, under the reply code it got."""
        metrics.count_inbound(kind, code)
        self.log.info(
            "inbound.message",
            unit=unit,
            kind=kind,
            outcome=code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    async def _store(self, envelope: Envelope) -> bool:
        """Store the message once; True when it was stored before (a resend)."""
        try:
            body = decode_body(envelope.kind, envelope.body)
        except msgspec.ValidationError as e:
            field = f"body.{field_of(e)}" if field_of(e) else "body"
            raise Invalid(f"{field}: {plain_message(e)}", field=field) from e
        body = to_microseconds(body, envelope.body)
        event_id = inbound_event_id(envelope.message_id)
        if await self._stored(envelope.unit, event_id):
            return True  # a resend (its sent_at, even its body, may differ): stored already
        event: Event
        if envelope.kind is EnvelopeKind.RESULT:
            assert isinstance(body, ResultBody)
            event = DossierResolved(
                event_id=event_id,
                unit=envelope.unit,
                occurred_at=body.resolved_at,
                dossier_id=envelope.dossier_id,
                outcome=body.outcome,
            )
        elif envelope.kind is EnvelopeKind.SUPPLEMENT_REQUEST:
            assert isinstance(body, NoteBody)
            event = DossierSupplementRequested(
                event_id=event_id,
                unit=envelope.unit,
                occurred_at=envelope.sent_at,
                dossier_id=envelope.dossier_id,
                note=body.note,
            )
        else:
            assert isinstance(body, NoteBody)
            return await self._record(envelope, body)
        if (problem := field_problem(event, datetime.now(UTC))) is not None:
            field = "body.resolved_at" if problem.field == "occurred_at" else problem.field
            raise Invalid(problem.message, field=field)
        headers = {ORIGIN: "province", ORIGIN_MESSAGE_ID: envelope.message_id}
        [reply] = await self.intake.record([Candidate(event, ENCODER.encode(event), headers)])
        if isinstance(reply, Accepted):
            return reply.duplicate
        detail = reply.error
        if detail.code is Conflict.code and await self._stored(envelope.unit, event_id):
            return True  # a resend racing its first sending, which was stored first
        raise _refusal_of(detail.code.value)(detail.message, field=detail.field)

    async def _stored(self, unit: str, event_id: str) -> bool:
        """Whether the event a message_id becomes is in the log (the event-id index's claim is
        followed by that very event when it was stored, as `Intake` appends it)."""
        return await self.intake.stored(unit, event_id) is not None

    async def _record(self, envelope: Envelope, body: NoteBody) -> bool:
        subject = event_subject(envelope.unit, Entity.DOSSIER, envelope.dossier_id)
        if (await self.event_log.entity_state(subject)).dossier is None:
            raise UnknownEntity(
                f"unit {envelope.unit} never received dossier {envelope.dossier_id!r}"
            )
        record = InboundRecord(
            message_id=envelope.message_id,
            kind=envelope.kind,
            unit=envelope.unit,
            dossier_id=envelope.dossier_id,
            sent_at=envelope.sent_at,
            received_at=datetime.now(UTC),
            note=body.note,
        )
        key = record_key(envelope.unit, envelope.dossier_id, "in", envelope.message_id)
        try:
            await self.records.create(key, msgspec.json.encode(record))
        except KeyWrongLastSequenceError:
            return True  # a resend: stored once already
        return False


def _refusal_of(code: str) -> type[Refusal]:
    return next(c for c in Refusal.__subclasses__() if c.code.value == code)
