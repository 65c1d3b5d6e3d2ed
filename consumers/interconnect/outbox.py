"""Interconnection, outbound stage 1: the event log's dossier events in, envelopes owed out.

A durable pull consumer (`interconnect-outbox`) reads every dossier event once. A
`dossier.transferred` with `interconnect: true` becomes a `transfer` envelope; any later event of
an interconnected dossier becomes a `status` envelope, except those that came from the province
itself (header `Lienthong-Origin: province`). Each envelope is published to the outbox stream
(ONESTOP_OUTBOX, subject `onestop.outbox.<unit>.<dossier_key>`) with `Nats-Msg-Id` = its
message_id, and only then are the events acknowledged, each one on its own (an ack never covers
another process's events): what is owed lives in JetStream, never only in memory, and a crash
between the two publishes it again as a duplicate the stream drops. A batch that fails is kept
and retried, never skipped, so a dossier's later event never reaches the outbox before an earlier.

The message_id is `<unit>:<event_id>`: event ids are unique per unit for ever, so a message
translated twice (a crash, a re-created consumer) is the same message for the delivery worker's
records and for the province's deduplication. Rebuilding reports or replaying the log reads the
log with other consumers, never this one, so it never owes the province anything new.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from consumers.audit.skips import OUTBOX, SkipRecorder
from consumers.interconnect.settings import OutboxSettings
from plumbing.errors import LogUnavailable
from plumbing.headers import DOSSIER_STATE, ORIGIN
from plumbing.jetstream import JetStream
from plumbing.runner import Runner
from plumbing.streams import EVENTS_STREAM, OUTBOX_PREFIX
from plumbing.subjects import encode_key
from schemas.codec import ENCODER, EVENT_DECODER
from schemas.events import (
    DossierDeadlineChanged,
    DossierEvent,
    DossierReceived,
    DossierResolved,
    DossierResultReturned,
    DossierSupplementRequested,
    DossierTransferred,
    DossierWithdrawn,
    Event,
    event_type,
)
from schemas.ids import derived_id
from schemas.interconnect import Envelope, EnvelopeKind, NoteBody, TransferBody
from schemas.lifecycle import DossierState
from schemas.periods import now_vn
from schemas.registry import Registry

EVENT_SEQ = "Lienthong-Event-Seq"
"""Header of an outbox message: the event-log sequence of the event it was translated from."""
DOSSIER_EVENTS = "onestop.events.*.dossier.>"

_STATE = msgspec.json.Decoder(DossierState)


def outbox_subject(unit: str, dossier_id: str) -> str:
    return f"{OUTBOX_PREFIX}.{unit}.{encode_key(dossier_id)}"


def message_id(unit: str, event_id: str) -> str:
    """`<unit>:<event_id>`, deterministic; hashed when it would exceed the envelope's 128 chars."""
    return derived_id(unit, event_id)


def status_note(event: Event) -> str:
    """A short plain note on a lifecycle event: its facts, never personal data or free text."""
    if isinstance(event, DossierResolved):
        return f"resolved: {event.outcome.value}"
    if isinstance(event, DossierWithdrawn):
        return "withdrawn by the applicant"
    if isinstance(event, DossierDeadlineChanged):
        return f"deadline changed ({event.reason.value}): due {event.due_at.isoformat()}"
    if isinstance(event, DossierSupplementRequested):
        return "supplement requested from the applicant"
    if isinstance(event, DossierResultReturned):
        return f"result returned: {event.method.value}"
    if isinstance(event, DossierTransferred):
        return f"transferred to {event.to_agency}"
    return event_type(event)


class OutboxMessage(msgspec.Struct, frozen=True):
    subject: str
    message_id: str
    data: bytes
    event_seq: int


class OutboxTranslator:
    """Stage 1: from the event log to ONESTOP_OUTBOX; start() then stop()."""

    def __init__(
        self,
        client: Client,
        registry: Registry,
        settings: OutboxSettings | None = None,
        *,
        replicas: int = 1,
    ) -> None:
        self.client = client
        self.registry = registry
        self.settings = settings or OutboxSettings()
        self.log = structlog.get_logger("lienthong.outbox")
        self.seq = 0
        """The last event-log sequence translated (and acknowledged)."""
        self.published = 0
        self._js = JetStream(client, 10.0)
        self._skips = SkipRecorder(client, OUTBOX, replicas)
        self._runner = Runner()

    async def start(self) -> None:
        js = self.client.jetstream()
        config = ConsumerConfig(
            durable_name=self.settings.durable,
            description="lienthong interconnection: dossier events to the outbox",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=self.settings.fetch_batch * 4,
            ack_wait=self.settings.ack_wait,
            max_deliver=-1,
            filter_subject=DOSSIER_EVENTS,
        )
        try:
            existing = await js.consumer_info(EVENTS_STREAM, self.settings.durable)
        except nats.js.errors.NotFoundError:
            existing = None
        if existing is not None:
            # The API's answer holds plain strings, not the enums.
            if AckPolicy(existing.config.ack_policy) is not AckPolicy.EXPLICIT:
                # An earlier version's AckPolicy.ALL consumer, which JetStream cannot change in
                # place: a new one starts where its acknowledgements ended.
                await js.delete_consumer(EVENTS_STREAM, self.settings.durable)
                config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
                config.opt_start_seq = existing.ack_floor.stream_seq + 1
            else:  # not editable: keep what it was created with
                config.deliver_policy = DeliverPolicy(existing.config.deliver_policy)
                config.opt_start_seq = existing.config.opt_start_seq
        # Created once and kept: what it has acknowledged is what has been translated. (Re-adding
        # with the same name updates the editable settings and keeps the position.)
        await js.add_consumer(EVENTS_STREAM, config)
        self._sub = await js.pull_subscribe_bind(self.settings.durable, stream=EVENTS_STREAM)
        self._runner.start(self._run())
        self.log.info("outbox.started", durable=self.settings.durable)

    async def stop(self) -> None:
        """Finish the batch at hand (its envelopes published and its events acknowledged)."""
        await self._runner.stop()
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()
        self.log.info("outbox.stopped", seq=self.seq, published=self.published)

    async def abort(self) -> None:
        """Stop at once, acknowledging nothing more: what a crash does (tests)."""
        await self._runner.abort()
        with contextlib.suppress(nats.errors.Error):  # a forwarder that lost its lease goes on
            await self._sub.unsubscribe()

    async def _run(self) -> None:
        while not self._runner.stopping:
            try:
                msgs = await self._sub.fetch(self.settings.fetch_batch, timeout=0.5)
            except TimeoutError:  # nats-py raises both its own and the builtin one
                continue
            except nats.errors.Error as e:  # connection trouble: the batch comes back later
                self.log.warning("outbox.fetch_failed", error=type(e).__name__)
                await self._runner.sleep(self.settings.retry_delay)
                continue
            if msgs:  # a pull request that expired empty may come back as []
                await self._handle(msgs)

    async def _handle(self, msgs: list[Msg]) -> None:
        """Translate a batch, publish what it owes (each dossier's in order), then ack each event.

        Whatever fails, the batch is kept (in progress) and tried again until done or stopping:
        fetching past it would let a dossier's later event into the outbox before an earlier one.
        """
        delay = self.settings.retry_delay
        published = False
        acked = 0
        while True:
            try:
                if not published:
                    await self._publish(msgs)
                    published = True
                while acked < len(msgs):
                    await msgs[acked].ack()  # not waited for one by one: the flush confirms all
                    acked += 1
                await self.client.flush(timeout=max(1, round(self.settings.ack_wait / 2)))
                break
            except LogUnavailable as e:
                # JetStream did not answer: nothing is lost (the events are not acknowledged).
                # Republishing is deduplicated by message_id.
                self.log.warning("outbox.retry", error=str(e), batch=len(msgs))
            except nats.errors.Error as e:
                self.log.warning("outbox.retry", error=type(e).__name__, batch=len(msgs))
            except Exception as e:  # a bug must not end the translator without a word
                self.log.error("outbox.failed", error=type(e).__name__, batch=len(msgs))
            if self._runner.stopping:
                return  # unacknowledged: the batch is translated again after a restart
            for msg in msgs[acked:]:  # keep them ours while we wait
                with contextlib.suppress(nats.errors.Error):
                    await msg.in_progress()
            await self._runner.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 30.0)
        self.seq = max(msg.metadata.sequence.stream for msg in msgs)

    async def _publish(self, msgs: list[Msg]) -> None:
        owed = [m for m in [await self.translate(msg) for msg in msgs] if m is not None]
        by_dossier: dict[str, list[OutboxMessage]] = defaultdict(list)
        for message in owed:
            by_dossier[message.subject].append(message)
        await asyncio.gather(*(self._publish_in_order(ms) for ms in by_dossier.values()))

    async def _publish_in_order(self, messages: list[OutboxMessage]) -> None:
        for message in messages:
            ack = await self._js.publish(
                message.subject,
                message.data,
                {"Nats-Msg-Id": message.message_id, EVENT_SEQ: str(message.event_seq)},
            )
            if not ack.duplicate:
                self.published += 1

    async def translate(self, msg: Msg) -> OutboxMessage | None:
        """The envelope a dossier event owes the province, or None."""
        headers = msg.headers or {}
        raw_state = headers.get(DOSSIER_STATE)
        seq = msg.metadata.sequence.stream
        try:
            event = EVENT_DECODER.decode(msg.data)
            state = _STATE.decode(raw_state) if raw_state else None
        except msgspec.DecodeError as e:  # not JSON, or not an event: nothing it could owe
            self.log.error("outbox.undecodable_event", seq=seq)
            # Before the batch is acknowledged: a failure here retries the batch, never loses it.
            await self._skips.record(seq, msg.subject, str(e))
            return None
        if not isinstance(event, DossierEvent) or state is None:
            return None
        if isinstance(event, DossierTransferred) and event.interconnect:
            return await self._transfer(msg.subject, seq, event, state)
        if state.interconnect and headers.get(ORIGIN) != "province":
            body = NoteBody(
                note=status_note(event),
                event_type=event_type(event),
                occurred_at=event.occurred_at,
            )
            return self._message(event, EnvelopeKind.STATUS, ENCODER.encode(body), seq)
        return None

    async def _transfer(
        self, subject: str, seq: int, event: DossierTransferred, state: DossierState
    ) -> OutboxMessage | None:
        first = await self._js.next_on_subject(EVENTS_STREAM, subject, 1)
        received = EVENT_DECODER.decode(first.data) if first is not None else None
        if not isinstance(received, DossierReceived):
            # The lifecycle puts dossier.received first, so this is a replica that has not
            # caught up (direct gets may be answered by one): read again rather than skip.
            raise LogUnavailable("the dossier's dossier.received could not be read yet")
        province = self.registry.province_of(event.unit) if event.unit in self.registry else None
        entitled = province is not None and province.entitled_to_personal_data
        body = TransferBody(
            procedure_code=received.procedure_code,
            channel=received.channel,
            service_level=received.service_level,
            received_at=received.occurred_at,
            due_at=state.due_at,
            to_agency=event.to_agency,
            # Sealed still: the delivery worker opens it as it sends (transfer_applicant).
            sealed_applicant=received.sealed_applicant if entitled else None,
            applicant=received.applicant if entitled else None,  # a log from before sealing
        )
        return self._message(event, EnvelopeKind.TRANSFER, ENCODER.encode(body), seq)

    def _message(
        self, event: DossierEvent, kind: EnvelopeKind, body: bytes, seq: int
    ) -> OutboxMessage:
        envelope = Envelope(
            message_id=message_id(event.unit, event.event_id),
            kind=kind,
            unit=event.unit,
            dossier_id=event.dossier_id,
            sent_at=now_vn(),
            body=msgspec.Raw(body),
        )
        return OutboxMessage(
            subject=outbox_subject(event.unit, event.dossier_id),
            message_id=envelope.message_id,
            data=ENCODER.encode(envelope),
            event_seq=seq,
        )
