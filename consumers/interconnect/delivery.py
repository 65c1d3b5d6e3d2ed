"""Interconnection, outbound stage 2: the outbox delivered to the province, each dossier in order.

A durable pull consumer (`interconnect-delivery`) on ONESTOP_OUTBOX hands messages to an
in-memory queue per dossier subject. Each dossier with messages has one task that delivers its
head as a request to `province.<province>.inbox.<unit>`: only `{"ok": true}` counts; anything
else, an error or no answer is retried with capped exponential backoff and full jitter, for as
long as it takes, always the same bytes (same message_id). Once acknowledged the delivery record
is written, then the outbox message is acknowledged (the work queue drops it), then the next.

Order does not rest on memory: before a head is sent, the worker reads the dossier's oldest
message still in the outbox, and sends only that one; an earlier message that a restart or a
redelivery put out of reach is waited for. Dossiers never wait for each other (a semaphore only
bounds requests in flight), so one stuck dossier or a province that drops requests holds back
nothing else. While a message is held it is kept in progress, so JetStream does not redeliver it.

After `park_after` seconds of failing a message is parked: its record says so, the dossier stops
(its later messages wait behind it, for order) until `lienthong resume-delivery` sets the record
back to pending. Records live in the KV bucket ONESTOP_DELIVERIES (`plumbing.records`) under
`<unit>.<dossier_key>.out.<message_key>`: they are not unit events and never touch the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from consumers.interconnect.envelope_head import HEAD, RECORD, EnvelopeHead, outbound_key
from consumers.interconnect.outbox import EVENT_SEQ
from consumers.interconnect.settings import ForwarderSettings
from consumers.interconnect.transfer_applicant import TransferApplicants
from plumbing.errors import LogUnavailable
from plumbing.key_encryption import KekError
from plumbing.records import (
    DeliveryRecord,
    DeliveryStatus,
    records_bucket,
)
from plumbing.runner import Runner
from plumbing.streams import OUTBOX_PREFIX, OUTBOX_STREAM
from plumbing.subjects import province_inbox_subject
from schemas.interconnect import DeliveryAck
from schemas.periods import now_vn
from schemas.registry import Registry

__all__ = ["DeliveryWorker", "ForwarderSettings"]

ACKED_MEMORY = 100_000
"""How many acknowledged outbox sequences the worker remembers (to skip a lost ack's leftover)."""


_ACK = msgspec.json.Decoder(DeliveryAck)


class _StoredSeq(msgspec.Struct):
    seq: int


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _MsgGet(msgspec.Struct):
    message: _StoredSeq | None = None
    error: _ApiError | None = None


_MSG_GET = msgspec.json.Decoder(_MsgGet)


class _Held:
    """An outbox message in the worker's hands (the newest delivery of it, for acks)."""

    __slots__ = ("dossier_id", "event_seq", "kind", "message_id", "msg", "seq", "unit")

    def __init__(self, msg: Msg, head: EnvelopeHead) -> None:
        self.msg = msg
        self.seq: int = msg.metadata.sequence.stream
        self.message_id = head.message_id
        self.kind = head.kind
        self.unit = head.unit
        self.dossier_id = head.dossier_id
        self.event_seq = int((msg.headers or {}).get(EVENT_SEQ, "0"))

    def record(self, status: DeliveryStatus, **fields: Any) -> DeliveryRecord:
        return DeliveryRecord(
            message_id=self.message_id,
            kind=self.kind,
            unit=self.unit,
            dossier_id=self.dossier_id,
            event_seq=self.event_seq,
            status=status,
            **fields,
        )


class _Dossier:
    __slots__ = ("queue", "subject", "task", "wake")

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.queue: dict[int, _Held] = {}
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()


class DeliveryWorker:
    """Stage 2: from ONESTOP_OUTBOX to the province; start() then stop()."""

    def __init__(
        self,
        client: Client,
        registry: Registry,
        settings: ForwarderSettings | None = None,
        *,
        replicas: int = 1,
    ) -> None:
        self.client = client
        self.registry = registry
        self.settings = settings or ForwarderSettings()
        self.replicas = replicas
        self.log = structlog.get_logger("lienthong.delivery")
        self.delivered = 0
        self.attempts = 0
        self.parked: set[str] = set()
        """message_ids parked now."""
        self._dossiers: dict[str, _Dossier] = {}
        self._acked: OrderedDict[int, None] = OrderedDict()
        self._sem = asyncio.Semaphore(self.settings.concurrency)
        self._runner = Runner()
        self._records: KeyValue | None = None
        self._applicants = TransferApplicants(client, self.settings.request_timeout)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        self._records = await records_bucket(self.client, self.replicas)
        js = self.client.jetstream()
        await js.add_consumer(
            OUTBOX_STREAM,
            ConsumerConfig(
                durable_name=s.durable,
                description="lienthong interconnection: the outbox delivered to the province",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=s.ack_wait,
                max_deliver=-1,
                max_ack_pending=s.max_ack_pending,
                filter_subject=f"{OUTBOX_PREFIX}.>",
            ),
        )
        self._sub = await js.pull_subscribe_bind(s.durable, stream=OUTBOX_STREAM)
        self._runner.start(self._fetch_loop(), self._keepalive_loop())
        self.log.info("delivery.started", durable=s.durable)

    async def stop(self, timeout: float | None = None) -> None:
        """Let requests in flight finish (bounded), then leave the rest to the next start."""
        # The loops that take messages end where they are; the dossiers' requests may finish.
        await self._runner.abort()
        for d in self._dossiers.values():
            d.wake.set()
        dossier_tasks = [d.task for d in self._dossiers.values() if d.task is not None]
        if dossier_tasks:
            wait = timeout if timeout is not None else self.settings.request_timeout + 1.0
            _, late = await asyncio.wait(dossier_tasks, timeout=wait)
            for task in late:
                task.cancel()
        await asyncio.gather(*dossier_tasks, return_exceptions=True)
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()
        self.log.info("delivery.stopped", delivered=self.delivered, held=self.held())

    async def abort(self) -> None:
        """Stop at once, mid-request, acknowledging nothing more: what a crash does (tests)."""
        await self._runner.abort(d.task for d in self._dossiers.values() if d.task is not None)
        with contextlib.suppress(nats.errors.Error):  # a forwarder that lost its lease goes on
            await self._sub.unsubscribe()

    def held(self) -> int:
        return sum(len(d.queue) for d in self._dossiers.values())

    # -- taking messages ----------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        while not self._runner.stopping:
            try:
                msgs = await self._sub.fetch(self.settings.fetch_batch, timeout=1.0)
            except TimeoutError:  # nats-py raises both its own and the builtin one
                continue
            except nats.errors.Error as e:
                self.log.warning("delivery.fetch_failed", error=type(e).__name__)
                await asyncio.sleep(self.settings.first_delay)
                continue
            for msg in msgs:
                await self._hold(msg)

    async def _hold(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq in self._acked:  # our ack was lost: say it again
            with contextlib.suppress(nats.errors.Error):
                await msg.ack()
            return
        d = self._dossiers.get(msg.subject)
        if d is None:
            d = self._dossiers[msg.subject] = _Dossier(msg.subject)
        if (held := d.queue.get(seq)) is not None:
            held.msg = msg  # a redelivery of what we hold: keep the newest for acks
            return
        try:
            head = HEAD.decode(msg.data)
        except msgspec.DecodeError:
            self.log.error("delivery.undecodable_envelope", seq=seq, subject=msg.subject)
            with contextlib.suppress(nats.errors.Error):
                await msg.term()
            return
        d.queue[seq] = _Held(msg, head)
        d.wake.set()
        if d.task is None:
            d.task = asyncio.create_task(self._serve(d))

    async def _keepalive_loop(self) -> None:
        """Every held message (being retried, parked, or waiting its turn) stays ours."""
        period = max(self.settings.ack_wait / 3, 0.05)
        while True:
            await asyncio.sleep(period)
            held = [h for d in list(self._dossiers.values()) for h in list(d.queue.values())]
            for h in held:
                with contextlib.suppress(nats.errors.Error):
                    await h.msg.in_progress()

    # -- one dossier --------------------------------------------------------------------------

    async def _serve(self, d: _Dossier) -> None:
        try:
            while d.queue and not self._runner.stopping:
                await self._deliver_head(d, d.queue[min(d.queue)])
        finally:
            d.task = None
            if not d.queue and self._dossiers.get(d.subject) is d:
                del self._dossiers[d.subject]

    async def _deliver_head(self, d: _Dossier, head: _Held) -> None:
        s = self.settings
        d.wake.clear()  # anything that arrives from here on wakes a wait below
        try:
            oldest = await self._oldest_owed(d.subject)
        except LogUnavailable:
            await self._runner.sleep(s.first_delay)
            return
        if oldest is None or oldest > head.seq:
            # Acknowledged already (a redelivery that crossed our ack): nothing to send.
            await self._done(d, head, ack=True)
            return
        if oldest < head.seq:
            # An earlier message of this dossier is owed but not in our hands (a redelivery
            # after a restart, another worker): it goes first. Wait for it to arrive.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(d.wake.wait(), timeout=max(s.ack_wait / 2, 0.1))
            return
        record = await self._read(head)
        if record is not None and record.status is DeliveryStatus.DELIVERED:
            await self._done(d, head, ack=True)  # the province has it; only our ack was missing
            return
        await self._retry_until_acknowledged(d, head, record)

    async def _retry_until_acknowledged(
        self, d: _Dossier, head: _Held, record: DeliveryRecord | None
    ) -> None:
        s = self.settings
        attempts = record.attempts if record is not None else 0
        first_at = record.first_attempt_at if record is not None else None
        resumed_at = record.resumed_at if record is not None else None
        last_error = record.last_error if record is not None else None
        if record is not None and record.status is DeliveryStatus.PARKED:
            resumed = await self._wait_for_resume(head)  # parked before a restart
            if resumed is None:
                return
            resumed_at = resumed.resumed_at or now_vn()
        run = 0
        written = time.monotonic()
        while not self._runner.stopping:
            error = await self._attempt(head)
            run += 1
            attempts += 1
            self.attempts += 1
            now = now_vn()
            first_at = first_at or now
            if error is None:
                delivered = head.record(
                    DeliveryStatus.DELIVERED,
                    attempts=attempts,
                    first_attempt_at=first_at,
                    last_attempt_at=now,
                    acknowledged_at=now,
                    last_error=last_error,
                    resumed_at=resumed_at,
                )
                if not await self._write(delivered):
                    return  # stopping: unacknowledged, so the next start delivers and records it
                self.delivered += 1
                await self._done(d, head, ack=True)
                return
            last_error = error
            pending = head.record(
                DeliveryStatus.PENDING,
                attempts=attempts,
                first_attempt_at=first_at,
                last_attempt_at=now,
                last_error=error,
                resumed_at=resumed_at,
            )
            if (now - (resumed_at or first_at)).total_seconds() >= s.park_after:
                await self._write(msgspec.structs.replace(pending, status=DeliveryStatus.PARKED))
                self.log.warning(
                    "delivery.parked",
                    unit=head.unit,
                    message_id=head.message_id,
                    attempts=attempts,
                    error=error,
                )
                resumed = await self._wait_for_resume(head)
                if resumed is None:
                    return
                resumed_at = resumed.resumed_at or now_vn()
                run = 0
                continue
            if run == 1 or time.monotonic() - written >= s.record_every:
                await self._write(pending)
                written = time.monotonic()
            await self._runner.sleep(self._backoff(run))

    def _backoff(self, run: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, first_delay * 2^(run-1)))."""
        s = self.settings
        return random.uniform(0, min(s.max_delay, s.first_delay * 2 ** min(run - 1, 40)))

    async def _attempt(self, head: _Held) -> str | None:
        """One request to the province; None when it answered `{"ok": true}`, else the error."""
        unit = head.unit
        province = self.registry.province_of(unit) if unit in self.registry else None
        if province is None:
            return f"unit {unit} has no province in the registry"
        subject = province_inbox_subject(province.code, unit)
        timeout = self.settings.request_timeout
        try:
            data = await self._applicants.opened(head.msg.data, province)
        except (LogUnavailable, KekError) as e:
            return f"the applicant could not be opened: {e}"
        async with self._sem:
            try:
                reply = await self.client.request(subject, data, timeout=timeout)
            except nats.errors.NoRespondersError:
                return f"no responders on {subject}: the province is not listening"
            except TimeoutError:
                return f"no answer from the province within {timeout:g} s"
            except nats.errors.Error as e:
                return f"request failed: {type(e).__name__}"
        try:
            if _ACK.decode(reply.data).ok is True:
                return None
        except msgspec.DecodeError:
            pass
        return "not acknowledged: " + reply.data[:200].decode("utf-8", "replace")

    async def _wait_for_resume(self, head: _Held) -> DeliveryRecord | None:
        """Until an operator sets the parked record back to pending; None when stopping."""
        self.parked.add(head.message_id)
        try:
            while not self._runner.stopping:
                await self._runner.sleep(self.settings.parked_poll)
                record = await self._read(head)
                if record is not None and record.status is not DeliveryStatus.PARKED:
                    self.log.info("delivery.resumed", unit=head.unit, message_id=head.message_id)
                    return record
            return None
        finally:
            self.parked.discard(head.message_id)

    async def _done(self, d: _Dossier, head: _Held, *, ack: bool) -> None:
        if ack:
            with contextlib.suppress(nats.errors.Error):
                await head.msg.ack_sync(timeout=self.settings.request_timeout)
            self._acked[head.seq] = None
            while len(self._acked) > ACKED_MEMORY:
                self._acked.popitem(last=False)
        d.queue.pop(head.seq, None)

    async def _oldest_owed(self, subject: str) -> int | None:
        """The stream sequence of the dossier's oldest message still owed, or None."""
        from_seq = 1
        while True:
            first = await self._first_seq(subject, from_seq)
            if first is None:
                return None
            if first not in self._acked:
                return first
            from_seq = first + 1  # acknowledged by us; the stream is catching up

    async def _first_seq(self, subject: str, from_seq: int) -> int | None:
        """The first sequence >= from_seq on `subject`, read from the stream's leader.

        Not a direct get: with replicas, a direct get may be answered by a follower that has not
        yet stored the newest message, and "not there" would be taken for "acknowledged".
        """
        request = msgspec.json.encode({"seq": from_seq, "next_by_subj": subject})
        try:
            reply = await self.client.request(
                f"$JS.API.STREAM.MSG.GET.{OUTBOX_STREAM}",
                request,
                timeout=self.settings.request_timeout,
            )
        except nats.errors.Error as e:  # timeouts and no responders alike: try again later
            raise LogUnavailable(f"the outbox could not be read: {type(e).__name__}") from e
        answer = _MSG_GET.decode(reply.data)
        if answer.message is not None:
            return answer.message.seq
        if answer.error is not None and answer.error.code == 404:
            return None
        raise LogUnavailable(f"the outbox could not be read: {answer.error}")

    # -- records ------------------------------------------------------------------------------

    async def _read(self, head: _Held) -> DeliveryRecord | None:
        assert self._records is not None
        key = outbound_key(head.unit, head.dossier_id, head.message_id)
        delay = self.settings.first_delay
        while True:
            try:
                entry = await self._records.get(key)
            except nats.js.errors.KeyNotFoundError:
                return None
            except nats.errors.Error as e:
                self.log.warning("delivery.record_unreadable", error=type(e).__name__)
                await self._runner.sleep(random.uniform(0, delay))
                delay = min(delay * 2, self.settings.max_delay)
                if self._runner.stopping:
                    return None
                continue
            return RECORD.decode(entry.value) if entry.value else None

    async def _write(self, record: DeliveryRecord) -> bool:
        """Write a record, retrying until it is stored; False only if the worker stops first.

        A delivery is never left unrecorded: its outbox message is acknowledged only after True.
        """
        assert self._records is not None
        key = outbound_key(record.unit, record.dossier_id, record.message_id)
        delay = self.settings.first_delay
        while True:
            try:
                await self._records.put(key, msgspec.json.encode(record))
                return True
            except nats.errors.Error as e:
                self.log.warning("delivery.record_unwritable", error=type(e).__name__)
                if self._runner.stopping:
                    return False
                await self._runner.sleep(random.uniform(0, delay))
                delay = min(delay * 2, self.settings.max_delay)
