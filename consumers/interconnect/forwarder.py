"""The outbound half of interconnection: the outbox translator and the delivery worker, together.

`lienthong serve` runs it where the forwarder lease is held (lienthong.node, plumbing.lease):
two forwarders at once could interleave a dossier's messages to the province.
"""

from __future__ import annotations

from nats.aio.client import Client

from consumers.interconnect.delivery import DeliveryWorker
from consumers.interconnect.outbox import OutboxTranslator
from consumers.interconnect.settings import ForwarderSettings
from schemas.registry import Registry


class Forwarder:
    def __init__(
        self,
        client: Client,
        registry: Registry,
        settings: ForwarderSettings | None = None,
        *,
        replicas: int = 1,
    ) -> None:
        self.client = client
        self.settings = settings or ForwarderSettings()
        self.outbox = OutboxTranslator(client, registry, self.settings.outbox, replicas=replicas)
        self.delivery = DeliveryWorker(client, registry, self.settings, replicas=replicas)

    async def start(self) -> None:
        await self.outbox.start()
        await self.delivery.start()

    async def stop(self) -> None:
        """Requests in flight finish; what is not acknowledged stays in the outbox."""
        await self.delivery.stop()
        await self.outbox.stop()

    async def abort(self) -> None:
        """Stop at once, acknowledging nothing more: what a crash does, or a lost lease needs."""
        await self.delivery.abort()
        await self.outbox.abort()
