"""The dashboard as a part of a process: its own NATS connection, the live feed, uvicorn serving
the app. Started by `lienthong dashboard` or as the `dashboard` role of `lienthong serve`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from nats.aio.client import Client

from dashboard.app import build
from dashboard.feed import ReportFeed
from dashboard.settings import DashboardSettings
from plumbing import connection
from plumbing.settings import NatsSettings
from schemas.registry import Registry


class CannotListen(OSError):
    """The dashboard's address cannot be listened on (the port taken, not this machine's)."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that runs the dashboard (serve,
    dashboard) owns SIGTERM and SIGINT and stops every part in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Dashboard:
    def __init__(
        self, nats: NatsSettings, registry: Registry, settings: DashboardSettings | None = None
    ) -> None:
        self.nats = nats
        self.registry = registry
        self.settings = settings or DashboardSettings()
        self.log = structlog.get_logger("lienthong.dashboard")
        self.client: Client | None = None
        self.feed: ReportFeed | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the dashboard is not started"
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        self.client = await connection.connect(self.nats)
        self.feed = ReportFeed(self.client)
        try:
            await self.feed.start()
            await self.feed.wait_caught_up()
        except BaseException:
            await self._close_feed()
            raise
        app = build(self.client, self.feed, self.registry, self.settings)
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        # The socket is bound here, not by uvicorn, which would end the process on a port
        # already taken: the caller says so in one line instead.
        try:
            listening = socket.create_server((self.settings.host, self.settings.port))
        except OSError as e:
            await self._close_feed()
            why = os.strerror(e.errno) if e.errno else str(e)
            where = f"{self.settings.host}:{self.settings.port}"
            raise CannotListen(f"cannot listen on {where}: {why}") from e
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listening]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"the dashboard did not start on port {self.settings.port}")
            await asyncio.sleep(0.02)
        self.log.info("dashboard.started", url=self.url, party=self.nats.party)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            # Open pages' event streams end when the feed stops; any other request still open
            # is closed after this long.
            self._server.config.timeout_graceful_shutdown = 2
            if self.feed is not None:
                await self.feed.stop()
            await self._task
            self._server = None
        await self._close_feed()
        self.log.info("dashboard.stopped")

    async def _close_feed(self) -> None:
        if self.feed is not None:
            await self.feed.stop()
        if self.client is not None:
            await self.client.close()
