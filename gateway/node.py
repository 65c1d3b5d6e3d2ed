"""What `lienthong serve` runs in one process: the gateway and the report projector.

Each part has its own connection and keeps everything it knows in JetStream, so parts can run
in separate processes or on separate machines with the same settings.
"""

from __future__ import annotations

from consumers.projector import ProjectorSettings, ReportProjector
from gateway import connection
from gateway.registry import Registry
from gateway.service import Gateway
from gateway.settings import NatsSettings, StreamSettings

ROLES = ("gateway", "projector")


class Node:
    def __init__(
        self,
        nats: NatsSettings,
        streams: StreamSettings,
        registry: Registry,
        projector: ProjectorSettings | None = None,
        *,
        roles: frozenset[str] = frozenset(ROLES),
    ) -> None:
        self.nats = nats
        self.roles = roles
        self.gateway = Gateway(nats, streams, registry)
        self.registry = registry
        self.projector_settings = projector or ProjectorSettings()
        self.projector: ReportProjector | None = None

    async def start(self) -> None:
        await self.gateway.start()  # provisions the streams the others read
        if "projector" not in self.roles:
            return
        client = await connection.connect(self.nats)
        self.projector = ReportProjector(client, self.registry, self.projector_settings)
        await self.projector.start()

    async def stop(self) -> None:
        await self.gateway.stop()
        if self.projector is not None:
            await self.projector.stop()  # flushed and checkpointed: nothing left to drain
            await self.projector.client.close()
