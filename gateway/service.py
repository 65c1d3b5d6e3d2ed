"""The running gateway: its NATS connections, streams, and the subscribers that serve units.

Any number of gateways serve side by side: subscribers share the queue group `lienthong`, and
everything they know lives in JetStream, never in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.client import Client

from gateway.event_index import EventIndex
from gateway.event_log import EventLog
from gateway.inbound import InboundService
from gateway.intake import Intake
from gateway.sites import Writer, relay_subject
from gateway.submit import SubmitService
from plumbing import connection
from plumbing.jetstream import JetStream
from plumbing.records import records_bucket
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import provision
from plumbing.subjects import INBOUND_PREFIX, SUBMIT_PREFIX, last_token
from schemas.registry import Registry

QUEUE_GROUP = "lienthong"
WORKERS = 16

Handler = Callable[[str, bytes], Awaitable[bytes]]


async def raw_body(msg: NatsMessage) -> bytes:
    """The body as it came: the handlers decode it with msgspec. faststream's default decoder
    would first parse every submission with the standard json module, for nothing."""
    return msg.body


def declare_submit(broker: NatsBroker, handle: Handler) -> None:
    """The `onestop.submit.<unit>` subscriber (also what the AsyncAPI document describes)."""

    @broker.subscriber(
        f"{SUBMIT_PREFIX}.*",
        queue=QUEUE_GROUP,
        max_workers=WORKERS,
        decoder=raw_body,
        title="onestop.submit.{unit}",
        description=(
            "A unit's system submits one event (JSON object) or up to 1,000 (JSON array), "
            "request/reply; answered with one reply per event (CONTRACT section 4)."
        ),
        include_in_schema=True,
    )
    async def submit(msg: NatsMessage) -> bytes:
        unit = last_token(msg.raw_message.subject, SUBMIT_PREFIX) or ""
        return await handle(unit, msg.body)


def declare_inbound(broker: NatsBroker, handle: Handler) -> None:
    """The `onestop.inbound.<unit>` subscriber: interconnection from the province to a unit."""

    @broker.subscriber(
        f"{INBOUND_PREFIX}.*",
        queue=QUEUE_GROUP,
        max_workers=WORKERS,
        decoder=raw_body,
        title="onestop.inbound.{unit}",
        description=(
            "The province sends an interconnection envelope to a unit, request/reply; answered "
            '{"ok": true} once stored, or an error as in CONTRACT section 4.'
        ),
    )
    async def inbound(msg: NatsMessage) -> bytes:
        unit = last_token(msg.raw_message.subject, INBOUND_PREFIX) or ""
        return await handle(unit, msg.body)


def declare_site_relays(broker: NatsBroker, site: str, submit: Handler, inbound: Handler) -> None:
    """A site's gateway takes what the city relays for its units (gateway.sites); no other
    gateway subscribes these subjects, so a relay never lands at another site."""
    for kind, handle in (("submit", submit), ("inbound", inbound)):
        prefix = relay_subject(site, kind, "")[:-1]

        def declare(prefix: str = prefix, handle: Handler = handle) -> None:
            @broker.subscriber(
                f"{prefix}.*",
                queue=QUEUE_GROUP,
                max_workers=WORKERS,
                decoder=raw_body,
                include_in_schema=False,
            )
            async def relayed(msg: NatsMessage) -> bytes:
                return await handle(last_token(msg.raw_message.subject, prefix) or "", msg.body)

        declare()


class InFlight:
    """Counts handlers at work, so a shutdown answers every batch it has begun."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def wrap(self, handle: Handler) -> Handler:
        async def wrapped(unit: str, payload: bytes) -> bytes:
            self._count += 1
            self._idle.clear()
            try:
                return await handle(unit, payload)
            finally:
                self._count -= 1
                if self._count == 0:
                    self._idle.set()

        return wrapped

    async def wait(self) -> None:
        await self._idle.wait()


class Gateway:
    def __init__(
        self,
        nats: NatsSettings,
        streams: StreamSettings,
        registry: Registry,
        *,
        site: str | None = None,
    ) -> None:
        self.nats_settings = nats
        self.stream_settings = streams
        self.registry = registry
        self.writer = Writer(registry, site)
        """The units whose entities this gateway writes: a site's, or the city's (site None)."""
        self.log = structlog.get_logger("lienthong.gateway")
        self.in_flight = InFlight()
        self._client: Client | None = None
        self._broker: NatsBroker | None = None

    @property
    def client(self) -> Client:
        assert self._client is not None, "the gateway is not started"
        return self._client

    async def start(self) -> None:
        self._client = await connection.connect(self.nats_settings)
        try:
            await provision(self._client, self.stream_settings)
        except BaseException:
            await self._client.close()  # e.g. a cluster still forming: leave nothing behind
            raise
        js = JetStream(self._client, self.nats_settings.request_timeout)
        log = EventLog(js)
        intake = Intake(log, EventIndex(js))
        service = SubmitService(intake, self.registry)
        records = await records_bucket(self._client, self.stream_settings.replicas)
        inbound = InboundService(intake, log, records, self.registry)
        self._broker = connection.broker(self.nats_settings)
        submit = self.writer.route(self._client, "submit", self.in_flight.wrap(service.submit))
        receive = self.writer.route(self._client, "inbound", self.in_flight.wrap(inbound.receive))
        declare_submit(self._broker, submit)
        declare_inbound(self._broker, receive)
        if self.writer.site is not None:
            declare_site_relays(self._broker, self.writer.site, submit, receive)
        await self._broker.start()
        # Started means subscribed: until the server has taken the SUBs, a submission sent at
        # once on another connection finds no responder.
        await self._broker.connection.flush()
        self.log.info("gateway.started", servers=list(self.nats_settings.servers))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking submissions, answer those in flight, then close.

        A broker that has already gone away must not turn a shutdown into a crash, so each
        step is bounded and a cancelled close of a dead connection is not an error.
        """
        if self._broker is not None:
            await _bounded(self._broker.stop(), timeout)
        await _bounded(self.in_flight.wait(), timeout)
        if self._client is not None and not self._client.is_closed:
            await _bounded(self._client.drain(), timeout)
        self.log.info("gateway.stopped")


async def _bounded(step: Awaitable[None], timeout: float) -> None:
    task = asyncio.ensure_future(step)
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        task.cancel()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled ourselves
