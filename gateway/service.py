"""The running gateway: its NATS connection, streams, and the subscribers that serve units.

Any number of gateways serve side by side: subscribers share the queue group `lienthong`, and
everything they know lives in JetStream, never in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog
from nats.aio.client import Client

from gateway.event_index import EventIndex
from gateway.event_log import EventLog
from gateway.inbound import InboundService
from gateway.intake import Intake
from gateway.responders import Responders
from gateway.sites import Writer, relay_subject
from gateway.submit import SubmitService
from plumbing import connection
from plumbing.jetstream import JetStream
from plumbing.records import records_bucket
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import provision
from plumbing.subjects import INBOUND_PREFIX, SUBMIT_PREFIX
from schemas.registry import Registry


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
        self._client: Client | None = None
        self._responders: Responders | None = None

    @property
    def busy(self) -> int:
        """Requests being answered now."""
        return self._responders.busy if self._responders is not None else 0

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
        self._responders = responders = Responders(self._client)
        submit = self.writer.route(self._client, "submit", service.submit)
        receive = self.writer.route(self._client, "inbound", inbound.receive)
        await responders.serve(SUBMIT_PREFIX, submit)
        await responders.serve(INBOUND_PREFIX, receive)
        if self.writer.site is not None:
            # What the city relays for this site's units (gateway.sites); no other gateway
            # subscribes these subjects, so a relay never lands at another site.
            await responders.serve(relay_subject(self.writer.site, "submit", "")[:-1], submit)
            await responders.serve(relay_subject(self.writer.site, "inbound", "")[:-1], receive)
        # Started means subscribed: until the server has taken the SUBs, a submission sent at
        # once on another connection finds no responder.
        await self._client.flush()
        self.log.info("gateway.started", servers=list(self.nats_settings.servers))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking submissions, answer those in flight, then close.

        A broker that has already gone away must not turn a shutdown into a crash, so each
        step is bounded and a cancelled close of a dead connection is not an error.
        """
        if self._responders is not None:
            await _bounded(self._responders.stop(), timeout)
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
