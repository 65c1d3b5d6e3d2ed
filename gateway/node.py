"""What `lienthong serve` runs in one process: the gateway, the report projector, the forwarder.

The forwarder is the outbound half of interconnection: the outbox translator and the delivery
worker (consumers.outbox, consumers.delivery). Any number of processes may carry the role: the
one holding the forwarder lease runs it, the others stand by (consumers.forwarder).

Each part has its own connection and keeps everything it knows in JetStream, so parts can run
in separate processes or on separate machines with the same settings.
"""

from __future__ import annotations

from consumers.delivery import ForwarderSettings
from consumers.forwarder import Forwarder
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
        self.forwarder: Forwarder | None = None

    async def start(self) -> None:
        await self.gateway.start()  # provisions the streams the others read
        if "projector" in self.roles:
            client = await connection.connect(self.nats)
            self.projector = ReportProjector(
                client,
                self.registry,
                self.projector_settings,
                replicas=self.gateway.stream_settings.replicas,
            )
            await self.projector.start()
        if "forwarder" in self.roles:
            await self._start_forwarder()

    async def _start_forwarder(self) -> None:
        client = await connection.connect(self.nats)
        self.forwarder = Forwarder(
            client,
            self.registry,
            self.forwarder_settings,
            replicas=self.gateway.stream_settings.replicas,
        )
        await self.forwarder.start()

    async def stop(self) -> None:
        await self.gateway.stop()
        if self.projector is not None:
            await self.projector.stop()  # flushed and checkpointed: nothing left to drain
            await self.projector.client.close()
        if self.forwarder is not None:
            await self.forwarder.stop()  # unacknowledged messages stay in the outbox
            await self.forwarder.client.close()
