"""Fixtures: a real nats-server per test (own port, own store), gateways in-process or as processes.

No mock brokers: the rules under test (dedupe, expected sequences, persistence) live in JetStream.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from consumers.reports.projector import ReportProjector
from gateway.service import Gateway
from lienthong import environment
from lienthong.embedded import NatsServer
from plumbing import connection, key_encryption
from plumbing.settings import NatsSettings, StreamSettings
from schemas.registry import Registry
from tests.helpers import FAST_PROJECTOR, SHORT_WINDOW, GatewayStarter


@pytest.fixture(autouse=True)
def lienthong_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test its own LIENTHONG_HOME, so a key-encryption key made under it (plumbing
    .key_encryption) never leaks into another test, nor into the developer's own home."""
    home = tmp_path / "home"
    monkeypatch.setenv("LIENTHONG_HOME", str(home))
    monkeypatch.delenv("LIENTHONG_KEK_DIR", raising=False)
    # In-process gateways get it as a process of `lienthong` does (lienthong.cli.run).
    monkeypatch.setattr(key_encryption, "_directory", environment.kek_dir())
    return home


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def nats_settings(nats_server: NatsServer) -> NatsSettings:
    return NatsSettings(servers=(nats_server.url,), request_timeout=2.0)


@pytest.fixture
def registry() -> Registry:
    return Registry.load()


@pytest.fixture
async def gateway(nats_settings: NatsSettings, registry: Registry) -> AsyncIterator[Gateway]:
    g = Gateway(nats_settings, StreamSettings(), registry)
    await g.start()
    yield g
    await g.stop()


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """Environment for lienthong processes a test starts (logs as JSON, own home)."""
    return {**os.environ, "LIENTHONG_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}


@pytest.fixture
async def gateways(
    nats_settings: NatsSettings, registry: Registry
) -> AsyncIterator[GatewayStarter]:
    """For tests that need their own Gateway(s): other settings, restarts, several instances."""
    starter = GatewayStarter(nats_settings, registry)
    yield starter
    for g in reversed(starter.running):
        await g.stop()


@pytest.fixture
async def projector(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry
) -> AsyncIterator[ReportProjector]:
    client = await connection.connect(nats_settings)
    p = ReportProjector(client, registry, FAST_PROJECTOR)
    await p.start()
    yield p
    await p.stop()
    await client.close()


@pytest.fixture
async def short_window(gateways: GatewayStarter) -> Gateway:
    """A gateway whose streams keep JetStream's own msg-id window for half a second only."""
    return await gateways.start(streams=StreamSettings(duplicate_window_seconds=SHORT_WINDOW))
