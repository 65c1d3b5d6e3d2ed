"""The sealer: the event log's hash chain, published now and then as a seal (CONTRACT section 7).

An ordered consumer (ephemeral: the seals stream itself says where to resume) reads every stored
event in sequence and extends the chain (consumers.log_chain); every `interval_seconds`, when
events came, the chain's head is published to `onestop.seals`, each seal expecting the last one,
so two sealers can never fork the record. A seal is evidence of what the log held at that
moment: recomputing the chain later (`lienthong verify`) shows whether anything sealed changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from consumers.log_chain import Chain
from consumers.periods import now_vn
from gateway import logs
from gateway.jetstream import JetStream, WrongLastSequence, delivery_of
from gateway.refusals import Unavailable
from gateway.streams import EVENTS_STREAM, SEALS_STREAM, SEALS_SUBJECT
from schemas.seal import Seal

_SEAL = msgspec.json.Decoder(Seal)


class SealerSettings(msgspec.Struct, frozen=True, kw_only=True):
    interval_seconds: float = 60.0
    """How often a new seal is published while events arrive."""
    lease_ttl: float = 15.0
    """One sealer runs per deployment; a standby takes over this long after it died."""


async def last_seal(js: JetStream) -> tuple[Seal, int] | None:
    """The latest seal and its sequence in ONESTOP_SEALS, or None before the first."""
    msg = await js.last_on_subject(SEALS_STREAM, SEALS_SUBJECT)
    return (_SEAL.decode(msg.data), msg.seq) if msg is not None else None


class Sealer:
    def __init__(
        self,
        client: Client,
        settings: SealerSettings | None = None,
        *,
        clock: Callable[[], datetime] = now_vn,
    ) -> None:
        self.client = client
        self.settings = settings or SealerSettings()
        self.clock = clock
        self.chain = Chain()
        self.sealed = 0
        """The event-log sequence the latest seal covers."""
        self.log = logs.get("lienthong.sealer")
        self._js = JetStream(client, 10.0)
        self._seal_seq = 0  # the latest seal's own sequence in ONESTOP_SEALS: the next expects it
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if (found := await last_seal(self._js)) is not None:
            seal, self._seal_seq = found
            self.chain = Chain(seal.seq, bytes.fromhex(seal.chain), seal.events)
            self.sealed = seal.seq
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        if self.chain.seq > 0:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.chain.seq + 1
            )
        self._sub = await self.client.jetstream().subscribe(
            "onestop.events.>",
            stream=EVENTS_STREAM,
            cb=self._on_event,
            ordered_consumer=True,
            config=config,
            pending_msgs_limit=100_000,
            pending_bytes_limit=256 * 1024 * 1024,
        )
        self._task = asyncio.create_task(self._run())
        self.log.info("sealer.started", resume_after=self.chain.seq)

    async def stop(self) -> None:
        """Seal what was read, then stop."""
        await self._halt()
        with contextlib.suppress(Unavailable, nats.errors.Error):
            await self.seal()
        self.log.info("sealer.stopped", sealed=self.sealed)

    async def abort(self) -> None:
        """Stop at once, sealing nothing more (another sealer took over)."""
        await self._halt()
        self.log.warning("sealer.aborted", sealed=self.sealed)

    async def _halt(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        with contextlib.suppress(nats.errors.Error):
            await self._sub.unsubscribe()

    async def _on_event(self, msg: Msg) -> None:
        delivery = delivery_of(msg.reply)
        if delivery.seq <= self.chain.seq:
            return  # already chained (a redelivery of the ordered consumer)
        if delivery.seq != self.chain.seq + 1:
            # Deletes are denied, so a gap means something removed events behind JetStream's API.
            self.log.error("sealer.gap_in_log", after=self.chain.seq, next=delivery.seq)
        self.chain.add(delivery.seq, msg.subject, delivery.stored_ns, msg.headers, msg.data)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=self.settings.interval_seconds
                )
            if self._stopping.is_set():
                return
            try:
                await self.seal()
            except (Unavailable, nats.errors.Error) as e:  # the broker away: seal next round
                self.log.warning("sealer.seal_failed", error=type(e).__name__)

    async def seal(self) -> Seal | None:
        """Publish the chain as it is now, if it moved since the last seal; the seal or None."""
        if self.chain.seq <= self.sealed:
            return None
        seal = Seal(
            seq=self.chain.seq,
            chain=self.chain.hex,
            events=self.chain.events,
            sealed_at=self.clock(),
        )
        try:
            ack = await self._js.publish(
                SEALS_SUBJECT,
                msgspec.json.encode(seal),
                {"Nats-Msg-Id": f"seal.{seal.seq}"},
                expected_last_subject_seq=self._seal_seq,
            )
        except WrongLastSequence:
            # Another sealer published meanwhile (a lease handover): follow its latest seal.
            if (found := await last_seal(self._js)) is not None:
                latest, self._seal_seq = found
                self.sealed = max(self.sealed, latest.seq)
            return None
        self._seal_seq = ack.seq
        self.sealed = seal.seq
        self.log.info("sealer.sealed", seq=seal.seq, events=seal.events)
        return seal

    async def wait_until_current(self, timeout: float = 60.0) -> Seal | None:
        """Until every event now in the log is chained; then seal it (tests, operators)."""
        target = (await self.client.jetstream().stream_info(EVENTS_STREAM)).state.last_seq
        deadline = time.monotonic() + timeout
        while self.chain.seq < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sealer at {self.chain.seq}, log at {target}")
            await asyncio.sleep(0.05)
        return await self.seal()
