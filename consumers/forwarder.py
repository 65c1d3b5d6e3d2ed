"""The outbound half of interconnection, run by whichever process holds the forwarder lease.

Every `lienthong serve` with the forwarder role runs one of these; only the one holding the lease
(consumers.lease) runs the outbox translator and the delivery worker, the others stand by and
take over when it stops or dies. So a deployment may run the role in several processes for
failover without two of them ever interleaving a dossier's messages.
"""

from __future__ import annotations

from nats.aio.client import Client

from consumers.delivery import DeliveryWorker, ForwarderSettings
from consumers.lease import Lease, LeasedPart
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
        self.log = logs.get("lienthong.forwarder")
        self.outbox: OutboxTranslator | None = None
        self.delivery: DeliveryWorker | None = None
        lease = Lease(client, LEASE_NAME, ttl=lease_ttl, replicas=replicas)
        self._part = LeasedPart(lease, self._start_parts, self._stop_parts)

    @property
    def active(self) -> bool:
        """This process is the one forwarding now."""
        return self._part.active

    async def start(self) -> None:
        await self._part.start()

    async def stop(self) -> None:
        await self._part.stop()

    async def _start_parts(self) -> None:
        self.outbox = OutboxTranslator(self.client, self.registry, self.settings.outbox)
        self.delivery = DeliveryWorker(
            self.client, self.registry, self.settings, replicas=self.replicas
        )
        await self.outbox.start()
        await self.delivery.start()
        self.log.info("forwarder.active")

    async def _stop_parts(self, aborted: bool) -> None:
        delivery, outbox = self.delivery, self.outbox
        self.delivery = self.outbox = None
        if delivery is not None:
            await (delivery.abort() if aborted else delivery.stop())
        if outbox is not None:
            await (outbox.abort() if aborted else outbox.stop())
        self.log.info("forwarder.standing_by" if aborted else "forwarder.stopped")
