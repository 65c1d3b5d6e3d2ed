"""What `lienthong serve` runs in one process: the gateway, the report projector, the forwarder,
the sealer.

The gateway role runs in every process that carries it (a queue group). The projector, the
forwarder (the outbound half of interconnection: consumers.interconnect.outbox and
consumers.interconnect.delivery) and the sealer (the log's hash chain: consumers.audit.sealer)
run in one process of a deployment at a time: any number may carry them, the one holding the
role's lease runs it and the others stand by to take over (plumbing.lease).

Each part has its own connection and keeps everything it knows in JetStream, so parts can run
in separate processes or on separate machines with the same settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client

from consumers.audit.sealer import Sealer, SealerSettings
from consumers.interconnect.forwarder import Forwarder
from consumers.interconnect.settings import ForwarderSettings
from consumers.reports.projector import ProjectorSettings, ReportProjector
from gateway.service import Gateway
from gateway.site_catchup import CatchUpSettings, SiteCatchUp
from plumbing import connection
from plumbing.lease import (
    FORWARDER_LEASE,
    PROJECTOR_LEASE,
    SEALER_LEASE,
    SITES_LEASE,
    Lease,
    LeasedPart,
)
from plumbing.settings import NatsSettings, StreamSettings
from schemas.registry import Registry

ROLES = ("gateway", "projector", "forwarder", "sealer", "sites")
SITE_ROLES = frozenset({"gateway"})
"""What a ward site runs: its gateway. The city projects, forwards and seals the site's events
once they are in its log, so nothing is counted or sent twice."""


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
        sealer: SealerSettings | None = None,
        sites: CatchUpSettings | None = None,
        site: str | None = None,
    ) -> None:
        self.nats = nats
        # A site runs its gateway only; the city takes its sites' events in (role "sites").
        self.roles = roles & SITE_ROLES if site is not None else roles
        self.gateway = Gateway(nats, streams, registry, site=site)
        self.registry = registry
        self.projector_settings = projector or ProjectorSettings()
        self.forwarder_settings = forwarder or ForwarderSettings()
        self.sealer_settings = sealer or SealerSettings()
        self.sites_settings = sites or CatchUpSettings()
        # Each one-per-deployment part, while this process holds its lease (else None).
        self.projector: ReportProjector | None = None
        self.forwarder: Forwarder | None = None
        self.sealer: Sealer | None = None
        self.sites: SiteCatchUp | None = None
        self._parts: list[LeasedPart] = []

    async def start(self) -> None:
        await self.gateway.start()  # provisions the streams the others read
        if "projector" in self.roles:
            await self._start_projector_role()
        if "forwarder" in self.roles:
            await self._start_forwarder_role()
        if "sealer" in self.roles:
            await self._start_sealer_role()
        if "sites" in self.roles and self.registry.sites():
            await self._start_sites_role()

    async def _leased(
        self,
        name: str,
        ttl: float,
        start: Callable[[Client], Awaitable[None]],
        stop: Callable[[bool], Awaitable[None]],
    ) -> LeasedPart:
        """A one-per-deployment part on its own connection, run while its lease is held here."""
        client = await connection.connect(self.nats)
        lease = Lease(client, name, ttl, self.gateway.stream_settings.replicas)
        part = LeasedPart(lease, lambda: start(client), stop)
        await part.start()
        return part

    async def _start_projector_role(self) -> None:
        async def start(client: Client) -> None:
            self.projector = ReportProjector(
                client,
                self.registry,
                self.projector_settings,
                replicas=self.gateway.stream_settings.replicas,
            )
            await self.projector.start()

        async def stop(aborted: bool) -> None:
            projector, self.projector = self.projector, None
            if projector is not None:
                # Lease lost: another process projects by now, so publish and checkpoint nothing.
                await (projector.abort() if aborted else projector.stop())

        ttl = self.projector_settings.lease_ttl
        self._parts.append(await self._leased(PROJECTOR_LEASE, ttl, start, stop))

    async def _start_sealer_role(self) -> None:
        async def start(client: Client) -> None:
            self.sealer = Sealer(client, self.sealer_settings)
            await self.sealer.start()

        async def stop(aborted: bool) -> None:
            sealer, self.sealer = self.sealer, None
            if sealer is not None:
                await (sealer.abort() if aborted else sealer.stop())

        ttl = self.sealer_settings.lease_ttl
        self._parts.append(await self._leased(SEALER_LEASE, ttl, start, stop))

    async def _start_sites_role(self) -> None:
        async def start(client: Client) -> None:
            self.sites = SiteCatchUp(
                client,
                self.registry,
                self.sites_settings,
                replicas=self.gateway.stream_settings.replicas,
            )
            await self.sites.start()

        async def stop(aborted: bool) -> None:
            sites, self.sites = self.sites, None
            if sites is not None:
                await (sites.abort() if aborted else sites.stop())

        ttl = self.sites_settings.lease_ttl
        self._parts.append(await self._leased(SITES_LEASE, ttl, start, stop))

    async def _start_forwarder_role(self) -> None:
        async def start(client: Client) -> None:
            self.forwarder = Forwarder(
                client,
                self.registry,
                self.forwarder_settings,
                replicas=self.gateway.stream_settings.replicas,
            )
            await self.forwarder.start()

        async def stop(aborted: bool) -> None:
            forwarder, self.forwarder = self.forwarder, None
            if forwarder is not None:
                # Lease lost: another process forwards by now, so send nothing more.
                await (forwarder.abort() if aborted else forwarder.stop())

        ttl = self.forwarder_settings.lease_ttl
        self._parts.append(await self._leased(FORWARDER_LEASE, ttl, start, stop))

    async def stop(self) -> None:
        await self.gateway.stop()
        # The projector flushes and checkpoints, the forwarder leaves what is not acknowledged in
        # the outbox, the sealer seals what it read; each then gives its lease up at once.
        for part in self._parts:
            await part.stop()
            await part.lease.client.close()
