"""The dashboard as a part of a process: its own NATS connection, the live feed, uvicorn serving
the app. Started by `lienthong dashboard` or as the `dashboard` role of `lienthong serve`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from nats.aio.client import Client

from dashboard.app import DashboardSettings, build
from dashboard.feed import ReportFeed
from gateway import connection, logs
from gateway.registry import Registry
from gateway.settings import NatsSettings


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
        self.log = logs.get("lienthong.dashboard")
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
        await self.feed.start()
        await self.feed.wait_caught_up()
        app = build(self.client, self.feed, self.registry, self.settings)
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # raises why it could not start (the port is taken, ...)
                raise OSError(f"the dashboard could not listen on port {self.settings.port}")
            await asyncio.sleep(0.02)
        self.log.info("dashboard.started", url=self.url)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            # Open pages' event streams end when the feed stops; any other request still open
            # is closed after this long.
            self._server.config.timeout_graceful_shutdown = 2
            if self.feed is not None:
                await self.feed.stop()
            await self._task
        elif self.feed is not None:
            await self.feed.stop()
        if self.client is not None:
            await self.client.close()
        self.log.info("dashboard.stopped")
