"""A stand-in for the province's system: its inbox for units' messages, and its answers.

It listens on `province.<province>.inbox.*`, deduplicates on message_id as the contract asks of
a receiver (it counts unique messages and resends apart), and answers `{"ok": true}`, unless it
is told to fail: `drop_every` N leaves every Nth request unanswered after taking it in (the
answer lost on the way, so the gateway must resend and the province must deduplicate); `down`
answers nothing; `refuse` answers `{"ok": false}` for chosen dossiers; `delay` answers late.

For each new `transfer` it sends back to `onestop.inbound.<unit>`, request/reply and retried
until answered, a `receipt` and then a `result` dated in the month after the dossier was
received (a day from the 3rd to the 20th at 09:00+07:00, derived from the dossier id, so a rerun
sends the same result), mostly approved. With `supplement_every` N, about one dossier in N (chosen
from its id, so a rerun chooses the same) first gets a `supplement_request`, sent (and so dated)
the day before its result. Message ids are derived from the dossier, so a second transfer of the
same dossier sends the same messages again, which the gateway stores once. Usable in-process
(`start`/`stop`, counters) and as `lienthong province-sim`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import zlib
from collections.abc import Coroutine
from datetime import date, datetime, timedelta
from typing import Any

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from plumbing.subjects import inbound_subject
from schemas.codec import ENCODER, decode_body
from schemas.events import Outcome
from schemas.interconnect import (
    Envelope,
    EnvelopeKind,
    NoteBody,
    ResultBody,
    TransferBody,
)
from schemas.periods import VN

OK = b'{"ok":true}'
NOT_OK = b'{"ok":false,"error":{"code":"refused","message":"the province refuses this dossier"}}'

_ENVELOPE = msgspec.json.Decoder(Envelope)


class _Answer(msgspec.Struct):
    ok: bool = False


_ANSWER = msgspec.json.Decoder(_Answer)


class ProvinceSettings(msgspec.Struct, frozen=True, kw_only=True):
    province: str = "52"
    drop_every: int = 0
    """Take in every Nth request but leave it unanswered (0: answer all)."""
    delay: float = 0.0
    """Seconds before each answer."""
    down: bool = False
    """Answer nothing at all."""
    results: bool = True
    """Send a receipt and a result back for each new transfer."""
    supplement_every: int = 0
    """Ask for a supplement, before the result, on about one transferred dossier in N (0: none)."""
    refuse: frozenset[str] = frozenset()
    """Dossier ids whose messages are answered `{"ok": false}` (and not taken in)."""
    request_timeout: float = 5.0
    retry_delay: float = 0.5
    """First delay before resending a receipt or result that got no answer (doubles, to 30 s)."""


def _short_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def result_of(dossier_id: str, received_at: datetime) -> tuple[datetime, Outcome]:
    """The province's decision on a dossier: a day in the next month, and the outcome."""
    h = zlib.crc32(dossier_id.encode())
    local = received_at.astimezone(VN)
    first = date(local.year + local.month // 12, local.month % 12 + 1, 1)
    day = 3 + h % 18
    when = datetime(first.year, first.month, day, 9, 0, tzinfo=VN)
    outcome = Outcome.REFUSED if h % 13 == 0 else Outcome.APPROVED
    return when, outcome


def asks_supplement(dossier_id: str, every: int) -> bool:
    """Whether the province asks for a supplement on this dossier: by its id, not by arrival."""
    return every > 0 and zlib.crc32(f"supplement\x1f{dossier_id}".encode()) % every == 0


class ProvinceSimulator:
    def __init__(self, client: Client, settings: ProvinceSettings | None = None) -> None:
        self.client = client
        self.settings = settings or ProvinceSettings()
        self.log = structlog.get_logger("lienthong.province")
        self.requests = 0
        self.received_unique = 0
        self.resends = 0
        self.unanswered = 0
        self.refused = 0
        self.results_sent = 0
        self.results_acknowledged = 0
        self.results_refused = 0
        self.receipts_sent = 0
        self.receipts_acknowledged = 0
        self.supplements_sent = 0
        self.supplements_acknowledged = 0
        self.by_kind: dict[str, int] = {}
        self.result_months: dict[str, int] = {}
        """Results acknowledged, by the month (YYYY-MM, UTC+07:00) of their resolved_at."""
        self.messages: dict[str, Envelope] = {}
        """Every unique message taken in, by message_id, in arrival order."""
        self.payloads: list[bytes] = []
        """Every request's bytes as it arrived, resends included."""
        self.subjects: set[str] = set()
        self.refuse: set[str] = set(self.settings.refuse)
        """Dossier ids refused now (may be changed while running)."""
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    @property
    def inbox(self) -> str:
        return f"province.{self.settings.province}.inbox.*"

    async def start(self) -> None:
        self._sub = await self.client.subscribe(self.inbox, cb=self._on_request)
        await self.client.flush()
        self.log.info("province.started", inbox=self.inbox)

    async def stop(self) -> None:
        self._stopping.set()
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
            self._sub = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.log.info("province.stopped", **self.counters())

    def counters(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "received_unique": self.received_unique,
            "resends": self.resends,
            "unanswered": self.unanswered,
            "refused": self.refused,
            "results_sent": self.results_sent,
            "results_acknowledged": self.results_acknowledged,
            "results_refused": self.results_refused,
            "receipts_sent": self.receipts_sent,
            "receipts_acknowledged": self.receipts_acknowledged,
            "supplements_sent": self.supplements_sent,
            "supplements_acknowledged": self.supplements_acknowledged,
        }

    def order(self, unit: str, dossier_id: str) -> list[str]:
        """The message_ids of one dossier in the order the province first saw them."""
        return [
            m.message_id
            for m in self.messages.values()
            if m.unit == unit and m.dossier_id == dossier_id
        ]

    # -- the inbox ----------------------------------------------------------------------------

    async def _on_request(self, msg: Msg) -> None:
        # One task per request: a delayed answer must not hold back the next request.
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        s = self.settings
        self.requests += 1
        n = self.requests
        self.payloads.append(msg.data)
        self.subjects.add(msg.subject)
        if s.down:
            self.unanswered += 1
            return
        try:
            envelope = _ENVELOPE.decode(msg.data)
        except msgspec.DecodeError:
            await self._reply(msg, b'{"ok":false,"error":{"code":"malformed"}}')
            return
        if envelope.dossier_id in self.refuse:
            self.refused += 1
            await self._reply(msg, NOT_OK)
            return
        if envelope.message_id in self.messages:
            self.resends += 1
        else:
            self.messages[envelope.message_id] = envelope
            self.received_unique += 1
            self.by_kind[envelope.kind.value] = self.by_kind.get(envelope.kind.value, 0) + 1
            if envelope.kind is EnvelopeKind.TRANSFER and s.results:
                self._spawn(self._decide(envelope))
        if s.drop_every and n % s.drop_every == 0:
            self.unanswered += 1  # taken in, but the answer never leaves
            return
        if s.delay:
            await asyncio.sleep(s.delay)
        await self._reply(msg, OK)

    async def _reply(self, msg: Msg, data: bytes) -> None:
        with contextlib.suppress(nats.errors.Error):
            await msg.respond(data)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the answers --------------------------------------------------------------------------

    async def _decide(self, transfer: Envelope) -> None:
        p = self.settings.province
        body = decode_body(EnvelopeKind.TRANSFER, transfer.body)
        assert isinstance(body, TransferBody)
        unit, dossier = transfer.unit, transfer.dossier_id
        receipt = NoteBody(note="received by the province's one-stop system")
        self.receipts_sent += 1
        if await self._send(
            EnvelopeKind.RECEIPT, f"{p}-receipt-{_short_id(unit, dossier)}", transfer, receipt
        ):
            self.receipts_acknowledged += 1
        resolved_at, outcome = result_of(dossier, body.received_at)
        now = datetime.now(VN)
        if asks_supplement(dossier, self.settings.supplement_every):
            # The gateway dates the request by its sent_at: the day before the result.
            asked_at = min(resolved_at - timedelta(days=1), now)
            request = NoteBody(note="the applicant is asked for a missing document")
            message_id = f"{p}-supplement-{_short_id(unit, dossier)}"
            self.supplements_sent += 1
            if await self._send(
                EnvelopeKind.SUPPLEMENT_REQUEST, message_id, transfer, request, sent_at=asked_at
            ):
                self.supplements_acknowledged += 1
        result = ResultBody(outcome=outcome, resolved_at=min(resolved_at, now))
        self.results_sent += 1
        if await self._send(
            EnvelopeKind.RESULT, f"{p}-result-{_short_id(unit, dossier)}", transfer, result
        ):
            self.results_acknowledged += 1
            month = result.resolved_at.astimezone(VN).strftime("%Y-%m")
            self.result_months[month] = self.result_months.get(month, 0) + 1
        else:
            self.results_refused += 1

    async def _send(
        self,
        kind: EnvelopeKind,
        message_id: str,
        about: Envelope,
        body: NoteBody | ResultBody,
        *,
        sent_at: datetime | None = None,
    ) -> bool:
        """Request/reply to the unit until answered; True when the answer was `ok: true`."""
        envelope = Envelope(
            message_id=message_id,
            kind=kind,
            unit=about.unit,
            dossier_id=about.dossier_id,
            sent_at=sent_at or datetime.now(VN),
            body=msgspec.Raw(ENCODER.encode(body)),
        )
        data = ENCODER.encode(envelope)
        delay = self.settings.retry_delay
        while not self._stopping.is_set():
            try:
                reply = await self.client.request(
                    inbound_subject(about.unit), data, timeout=self.settings.request_timeout
                )
            except nats.errors.Error:
                pass  # no answer, no responders: the same message again, later
            else:
                try:
                    answer = _ANSWER.decode(reply.data)
                except msgspec.DecodeError:
                    answer = _Answer()
                if answer.ok:
                    return True
                if b'"unavailable"' not in reply.data:
                    self.log.warning(
                        "province.answer_refused",
                        kind=kind.value,
                        unit=about.unit,
                        answer=reply.data[:200].decode("utf-8", "replace"),
                    )
                    return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            delay = min(delay * 2, 30.0)
        return False

    async def settled(self, transfers: int, timeout: float = 60.0) -> bool:
        """Until `transfers` unique transfers came in and each one's result was answered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            done = self.results_acknowledged + self.results_refused
            if self.by_kind.get("transfer", 0) >= transfers and done >= transfers:
                return True
            await asyncio.sleep(0.05)
        return False
