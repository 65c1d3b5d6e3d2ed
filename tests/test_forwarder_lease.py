"""One forwarder at a time, however many processes carry the role; another takes over.

Two forwarders could interleave a dossier's messages to the province (CONTRACT section 5: each
dossier's messages in order), so the role runs where the forwarder lease is held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client

from consumers.delivery import ForwarderSettings
from consumers.forwarder import Forwarder
from consumers.lease import Lease
from consumers.outbox import OutboxSettings
from gateway.embedded import NatsServer
from gateway.province_sim import ProvinceSettings, ProvinceSimulator
from gateway.registry import Registry
from gateway.service import Gateway
from tests import events as ev
from tests.helpers import submit, until

TTL = 1.5
FAST = ForwarderSettings(
    ack_wait=2.0,
    outbox=OutboxSettings(ack_wait=2.0),
    first_delay=0.02,
    max_delay=0.25,
    request_timeout=0.5,
)


@pytest.fixture
async def connections(nats_server: NatsServer) -> AsyncIterator[list[Client]]:
    """Three connections, as three processes would have; closed at the end."""
    clients = [await nats.connect(nats_server.url) for _ in range(3)]
    yield clients
    for c in clients:
        if not c.is_closed:
            await c.close()


async def test_a_held_lease_is_not_taken_until_released(connections: list[Client]) -> None:
    first, second = Lease(connections[0], "role", TTL), Lease(connections[1], "role", TTL)
    assert await first.try_acquire()
    assert first.held
    assert not await second.try_acquire()
    await first.release()
    assert await second.try_acquire()


async def test_a_lease_its_holder_stopped_renewing_expires_and_is_taken(
    connections: list[Client],
) -> None:
    first, second = Lease(connections[0], "role", TTL), Lease(connections[1], "role", TTL)
    assert await first.try_acquire()
    await connections[0].close()  # the holder dies: no renewal, no release
    started = time.monotonic()
    assert await second.acquire(asyncio.Event())
    assert time.monotonic() - started < TTL * 3
    assert not first.held  # and the dead holder's own view agrees by now


async def test_a_renewed_lease_outlives_its_ttl_and_a_taken_one_is_known_lost(
    connections: list[Client],
) -> None:
    first, second = Lease(connections[0], "role", TTL), Lease(connections[1], "role", TTL)
    assert await first.try_acquire()
    stop = asyncio.Event()
    holding = asyncio.create_task(first.hold(stop))
    await asyncio.sleep(TTL * 2)
    assert not await second.try_acquire()  # renewed: still the first's
    assert first.held
    stop.set()
    assert await holding is True  # stopped, not lost
    # Taken behind its back (as after an expiry it did not notice): the holder learns it lost.
    kv = await connections[2].jetstream().key_value("ONESTOP_LEASES")
    await kv.put("role", b"someone else")
    assert await first.hold(asyncio.Event()) is False
    assert not first.held


async def test_only_the_lease_holder_forwards_and_another_takes_over_when_it_stops(
    gateway: Gateway, registry: Registry, connections: list[Client], client: Client
) -> None:
    province = ProvinceSimulator(
        connections[2], ProvinceSettings(results=False, request_timeout=2.0)
    )
    await province.start()
    first = Forwarder(connections[0], registry, FAST, lease_ttl=TTL)
    second = Forwarder(connections[1], registry, FAST, lease_ttl=TTL)
    await first.start()
    await second.start()
    assert first.active
    assert not second.active

    async def transfer(dossier_id: str) -> None:
        replies = await submit(
            client,
            ev.WARD,
            [
                ev.received(dossier_id),
                ev.dossier_event("transferred", dossier_id, interconnect=True),
            ],
        )
        assert all(r["ok"] for r in replies)

    for n in range(5):
        await transfer(f"HS-A{n}")
    await until(lambda: province.received_unique == 5, what="the first forwarder's deliveries")
    assert not second.active

    await first.stop()  # releases the lease: the other need not wait for it to expire
    await until(lambda: second.active, timeout=TTL * 3, what="the second forwarder taking over")
    for n in range(5):
        await transfer(f"HS-B{n}")
    await until(lambda: province.received_unique == 10, what="the second one's deliveries")
    await second.stop()
    await province.stop()
    assert province.requests == province.received_unique + province.resends
