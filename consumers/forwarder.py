"""The outbound half of interconnection, run by whichever process holds the forwarder lease.

Every `lienthong serve` with the forwarder role runs one of these; only the one holding the lease
(consumers.lease) runs the outbox translator and the delivery worker, the others stand by and
take over when it stops or dies. So a deployment may run the role in several processes for
failover without two of them ever interleaving a dossier's messages.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from consumers.delivery import DeliveryWorker, ForwarderSettings
from consumers.lease import Lease
from consumers.outbox import OutboxTranslator
from gateway import logs
from gateway.registry import Registry

LEASE_NAME = "forwarder"


class Forwarder:
    def __init__(
        self,
        client: Client,
        registry: Registry,
        settings: ForwarderSettings | None = None,
        *,
        replicas: int = 1,
        lease_ttl: float = 15.0,
    ) -> None:
        self.client = client
        self.registry = registry
        self.settings = settings or ForwarderSettings()
        self.replicas = replicas
        self.lease = Lease(client, LEASE_NAME, ttl=lease_ttl, replicas=replicas)
        self.log = logs.get("lienthong.forwarder")
        self.outbox: OutboxTranslator | None = None
        self.delivery: DeliveryWorker | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """This process is the one forwarding now."""
        return self.delivery is not None

    async def start(self) -> None:
        """Take the lease if it is free (and forward at once), else stand by in the background."""
        if await self.lease.try_acquire():
            await self._start_parts()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self._stop_parts()
        await self.lease.release()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if not self.active:
                if not await self.lease.acquire(self._stopping):
                    return
                await self._start_parts()
            if await self.lease.hold(self._stopping):
                return  # stopping: stop() takes the parts down and releases the lease
            # Lost (expired while unreachable, taken by another): stop sending at once.
            await self._stop_parts(abort=True)

    async def _start_parts(self) -> None:
        self.outbox = OutboxTranslator(self.client, self.registry, self.settings.outbox)
        self.delivery = DeliveryWorker(
            self.client, self.registry, self.settings, replicas=self.replicas
        )
        await self.outbox.start()
        await self.delivery.start()
        self.log.info("forwarder.active", holder=self.lease.holder)

    async def _stop_parts(self, *, abort: bool = False) -> None:
        delivery, outbox = self.delivery, self.outbox
        self.delivery = self.outbox = None
        if delivery is not None:
            await (delivery.abort() if abort else delivery.stop())
        if outbox is not None:
            await (outbox.abort() if abort else outbox.stop())
        if delivery is not None or outbox is not None:
            self.log.info("forwarder.standing_by" if abort else "forwarder.stopped")
