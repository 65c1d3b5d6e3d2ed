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
back to pending. Records live in the KV bucket ONESTOP_DELIVERIES (`gateway.inbound`) under
`<unit>.<dossier_key>.out.<message_key>`: they are not unit events and never touch the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from consumers.outbox import EVENT_SEQ, OutboxSettings
from consumers.periods import now_vn
from gateway import logs
from gateway.inbound import RECORDS_BUCKET, record_key, records_bucket
from gateway.jetstream import JetStream, StoredMessage
from gateway.last_values import kv_values
from gateway.refusals import Unavailable
from gateway.registry import Registry
from gateway.streams import OUTBOX_PREFIX, OUTBOX_STREAM
from gateway.subjects import decode_key, encode_key, province_inbox_subject
from schemas.interconnect import DeliveryAck, EnvelopeKind

__all__ = [
    "DeliveryRecord",
    "DeliveryStatus",
    "DeliveryWorker",
    "ForwarderSettings",
    "PendingDossier",
    "UnitDeliveryStatus",
    "delivery_status",
    "pending_dossiers",
    "records_for_dossier",
    "resume_parked",
]

ACKED_MEMORY = 100_000
"""How many acknowledged outbox sequences the worker remembers (to skip a lost ack's leftover)."""


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


_RECORD = msgspec.json.Decoder(DeliveryRecord)
_ACK = msgspec.json.Decoder(DeliveryAck)


class _EnvelopeHead(msgspec.Struct):
    """The envelope's fields the worker needs; the bytes themselves are sent untouched."""

    message_id: str
    kind: EnvelopeKind
    unit: str
    dossier_id: str


_HEAD = msgspec.json.Decoder(_EnvelopeHead)


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


class ForwarderSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Both outbound stages. Every duration is in seconds."""

    durable: str = "interconnect-delivery"
    ack_wait: float = 30.0
    """How long a held message may go without a sign of life before JetStream redelivers it."""
    first_delay: float = 0.5
    max_delay: float = 300.0
    park_after: float = 86_400.0
    request_timeout: float = 5.0
    concurrency: int = 64
    """Requests to the province in flight at once, over all dossiers."""
    max_ack_pending: int = 20_000
    fetch_batch: int = 500
    parked_poll: float = 5.0
    """How often a parked message's record is read to see whether an operator resumed it."""
    record_every: float = 30.0
    """How often a pending record is rewritten with the latest error while retries go on."""
    lease_ttl: float = 15.0
    """One forwarder runs per deployment; a standby takes over this long after it died."""
    outbox: OutboxSettings = msgspec.field(default_factory=OutboxSettings)


def outbound_key(unit: str, dossier_id: str, message_id: str) -> str:
    return record_key(unit, dossier_id, "out", message_id)


class _Held:
    """An outbox message in the worker's hands (the newest delivery of it, for acks)."""

    __slots__ = ("dossier_id", "event_seq", "kind", "message_id", "msg", "seq", "unit")

    def __init__(self, msg: Msg, head: _EnvelopeHead) -> None:
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
        self.log = logs.get("lienthong.delivery")
        self.delivered = 0
        self.attempts = 0
        self.parked: set[str] = set()
        """message_ids parked now."""
        self._dossiers: dict[str, _Dossier] = {}
        self._acked: OrderedDict[int, None] = OrderedDict()
        self._sem = asyncio.Semaphore(self.settings.concurrency)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._records: KeyValue | None = None

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
        self._tasks = [
            asyncio.create_task(self._fetch_loop()),
            asyncio.create_task(self._keepalive_loop()),
        ]
        self.log.info("delivery.started", durable=s.durable)

    async def stop(self, timeout: float | None = None) -> None:
        """Let requests in flight finish (bounded), then leave the rest to the next start."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for d in self._dossiers.values():
            d.wake.set()
        dossier_tasks = [d.task for d in self._dossiers.values() if d.task is not None]
        if dossier_tasks:
            wait = timeout if timeout is not None else self.settings.request_timeout + 1.0
            _, late = await asyncio.wait(dossier_tasks, timeout=wait)
            for task in late:
                task.cancel()
        await asyncio.gather(*self._tasks, *dossier_tasks, return_exceptions=True)
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()
        self.log.info("delivery.stopped", delivered=self.delivered, held=self.held())

    async def abort(self) -> None:
        """Stop at once, mid-request, acknowledging nothing more: what a crash does (tests)."""
        self._stopping.set()
        tasks = [*self._tasks, *(d.task for d in self._dossiers.values() if d.task is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(nats.errors.Error):  # a forwarder that lost its lease goes on
            await self._sub.unsubscribe()

    def held(self) -> int:
        return sum(len(d.queue) for d in self._dossiers.values())

    # -- taking messages ----------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        while not self._stopping.is_set():
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
            head = _HEAD.decode(msg.data)
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
            while d.queue and not self._stopping.is_set():
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
        except Unavailable:
            await self._sleep(s.first_delay)
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
        while not self._stopping.is_set():
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
            await self._sleep(self._backoff(run))

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
        async with self._sem:
            try:
                reply = await self.client.request(subject, head.msg.data, timeout=timeout)
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
            while not self._stopping.is_set():
                await self._sleep(self.settings.parked_poll)
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
            raise Unavailable(f"the outbox could not be read: {type(e).__name__}") from e
        answer = _MSG_GET.decode(reply.data)
        if answer.message is not None:
            return answer.message.seq
        if answer.error is not None and answer.error.code == 404:
            return None
        raise Unavailable(f"the outbox could not be read: {answer.error}")

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
                await self._sleep(random.uniform(0, delay))
                delay = min(delay * 2, self.settings.max_delay)
                if self._stopping.is_set():
                    return None
                continue
            return _RECORD.decode(entry.value) if entry.value else None

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
                if self._stopping.is_set():
                    return False
                await self._sleep(random.uniform(0, delay))
                delay = min(delay * 2, self.settings.max_delay)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


# -- operators: history, status, resume -------------------------------------------------------


async def _bucket(client: Client) -> KeyValue | None:
    try:
        kv: KeyValue = await client.jetstream().key_value(RECORDS_BUCKET)
    except nats.js.errors.NotFoundError:
        return None
    return kv


async def records_for_dossier(client: Client, unit: str, dossier_id: str) -> list[DeliveryRecord]:
    """The outbound delivery records of one dossier, in the order of the events they came from."""
    pattern = f"{unit}.{encode_key(dossier_id)}.out.>"
    records = [_RECORD.decode(v) for v in await kv_values(client, RECORDS_BUCKET, pattern)]
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
            head = _HEAD.decode(first.data)
            record = None
            if kv is not None:
                key = outbound_key(head.unit, head.dossier_id, head.message_id)
                with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                    entry = await kv.get(key)
                    record = _RECORD.decode(entry.value) if entry.value else None
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
            raise Unavailable(f"the outbox could not be read: {page.error.get('description')}")
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
        current = _RECORD.decode(entry.value) if entry.value else None
        if current is None or current.status is not DeliveryStatus.PARKED:
            continue
        again = msgspec.structs.replace(current, status=DeliveryStatus.PENDING, resumed_at=now_vn())
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
            await kv.update(key, msgspec.json.encode(again), last=entry.revision)
            resumed.append(again)
    return resumed


class UnitDeliveryStatus(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    pending: int
    dossiers: int
    oldest_stored_at: datetime
    parked: int
    last_error: str | None
    last_error_at: datetime | None


async def delivery_status(client: Client) -> list[UnitDeliveryStatus]:
    """Per unit: messages owed to the province, the oldest, parked ones, the latest error."""
    by_unit: dict[str, list[PendingDossier]] = {}
    for p in await pending_dossiers(client):
        by_unit.setdefault(p.unit, []).append(p)
    rows: list[UnitDeliveryStatus] = []
    for unit, dossiers in sorted(by_unit.items()):
        heads = [p.head for p in dossiers if p.head is not None]
        failing = [r for r in heads if r.last_error and r.last_attempt_at]
        latest = max(failing, key=lambda r: r.last_attempt_at or now_vn(), default=None)
        rows.append(
            UnitDeliveryStatus(
                unit=unit,
                pending=sum(p.pending for p in dossiers),
                dossiers=len(dossiers),
                oldest_stored_at=min(p.oldest_stored_at for p in dossiers),
                parked=sum(r.status is DeliveryStatus.PARKED for r in heads),
                last_error=latest.last_error if latest else None,
                last_error_at=latest.last_attempt_at if latest else None,
            )
        )
    return rows


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d {seconds % 86_400 // 3600:02d}h"


def status_table(rows: list[UnitDeliveryStatus], registry: Registry, now: datetime) -> str:
    """The plain table `lienthong status` prints."""
    if not rows:
        return "Nothing is waiting for delivery to the province.\n"
    header = f"{'unit':<6} {'name':<28} {'pending':>7} {'dossiers':>8} {'oldest':>9} {'parked':>6}"
    lines = [header + "  last error", "-" * (len(header) + 12)]
    for r in rows:
        name = registry[r.unit].name if r.unit in registry else ""
        age = _age((now - r.oldest_stored_at).total_seconds())
        error = "-"
        if r.last_error:
            when = r.last_error_at.strftime("%Y-%m-%d %H:%M") if r.last_error_at else ""
            error = f"{when} {r.last_error}".strip()
        lines.append(
            f"{r.unit:<6} {name[:28]:<28} {r.pending:>7} {r.dossiers:>8} {age:>9} {r.parked:>6}"
            f"  {error}"
        )
    return "\n".join(lines) + "\n"
