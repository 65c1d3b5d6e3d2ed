"""What `lienthong serve` runs in one process: the gateway, the report projector, the forwarder.

The forwarder is the outbound half of interconnection: the outbox translator and the delivery
worker (consumers.outbox, consumers.delivery). Run it in one process of a deployment.

Each part has its own connection and keeps everything it knows in JetStream, so parts can run
in separate processes or on separate machines with the same settings.
"""

from __future__ import annotations

from consumers.delivery import DeliveryWorker, ForwarderSettings
from consumers.outbox import OutboxTranslator
from consumers.projector import ProjectorSettings, ReportProjector
from gateway import connection
from gateway.registry import Registry
from gateway.service import Gateway
from gateway.settings import NatsSettings, StreamSettings

ROLES = ("gateway", "projector", "forwarder")


class Node:
    def __init__(
        self,
        nats: NatsSettings,
        streams: StreamSettings,
        registry: Registry,
        projector: ProjectorSettings | None = None,
        *,
        roles: frozenset[str] = frozenset(ROLES),
        forwarder: ForwarderSettings | None = None,
    ) -> None:
        self.nats = nats
        self.roles = roles
        self.gateway = Gateway(nats, streams, registry)
        self.registry = registry
        self.projector_settings = projector or ProjectorSettings()
        self.projector: ReportProjector | None = None
        self.forwarder_settings = forwarder or ForwarderSettings()
        self.outbox: OutboxTranslator | None = None
        self.delivery: DeliveryWorker | None = None

    async def start(self) -> None:
        await self.gateway.start()  # provisions the streams the others read
        if "projector" in self.roles:
            client = await connection.connect(self.nats)
            self.projector = ReportProjector(client, self.registry, self.projector_settings)
            await self.projector.start()
        if "forwarder" in self.roles:
            await self._start_forwarder()

    async def _start_forwarder(self) -> None:
        client = await connection.connect(self.nats)
        settings = self.forwarder_settings
        self.outbox = OutboxTranslator(client, self.registry, settings.outbox)
        self.delivery = DeliveryWorker(
            client, self.registry, settings, replicas=self.gateway.stream_settings.replicas
        )
        await self.outbox.start()
        await self.delivery.start()

    async def stop(self) -> None:
        await self.gateway.stop()
        if self.projector is not None:
            await self.projector.stop()  # flushed and checkpointed: nothing left to drain
            await self.projector.client.close()
        if self.delivery is not None:
            await self.delivery.stop()  # unacknowledged messages stay in the outbox
        if self.outbox is not None:
            await self.outbox.stop()
            await self.outbox.client.close()
