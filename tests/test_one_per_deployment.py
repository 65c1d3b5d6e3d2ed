"""The projector and the forwarder run in one process at a time, however many carry the role;
another takes over when it stops or dies.

Two forwarders could interleave a dossier's messages to the province (CONTRACT section 5: each
dossier's messages in order), and two projectors would take each other's consumer away, so each
role runs where its lease is held (plumbing.lease).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client

from consumers.interconnect.settings import ForwarderSettings, OutboxSettings
from consumers.reports import report_store
from consumers.reports.projector import ProjectorSettings
from lienthong.demo.province_sim import ProvinceSettings, ProvinceSimulator
from lienthong.embedded import NatsServer
from lienthong.node import Node
from plumbing.jetstream import JetStream
from plumbing.lease import Lease, LeasedPart
from plumbing.settings import NatsSettings, StreamSettings
from schemas.registry import Registry
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
    nats_settings: NatsSettings, registry: Registry, connections: list[Client], client: Client
) -> None:
    province = ProvinceSimulator(
        connections[2], ProvinceSettings(results=False, request_timeout=2.0)
    )
    await province.start()
    settings = msgspec.structs.replace(FAST, lease_ttl=TTL)
    only = frozenset({"forwarder"})
    first, second = (
        Node(nats_settings, StreamSettings(), registry, roles=only, forwarder=settings)
        for _ in range(2)
    )
    await first.start()
    await second.start()
    assert first.forwarder is not None
    assert second.forwarder is None

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

    try:
        for n in range(5):
            await transfer(f"HS-A{n}")
        await until(lambda: province.received_unique == 5, what="the first one's deliveries")
        assert second.forwarder is None

        await first.stop()  # releases the lease: the other need not wait for it to expire
        await until(
            lambda: second.forwarder is not None, timeout=TTL * 3, what="the second taking over"
        )
        for n in range(5):
            await transfer(f"HS-B{n}")
        await until(lambda: province.received_unique == 10, what="the second one's deliveries")
    finally:
        await second.stop()
        await province.stop()
    assert province.requests == province.received_unique + province.resends


async def test_only_the_lease_holder_projects_and_another_takes_over_when_it_stops(
    nats_settings: NatsSettings, registry: Registry, client: Client
) -> None:
    settings = ProjectorSettings(coalesce_seconds=0.1, lease_ttl=TTL)
    first, second = (
        Node(nats_settings, StreamSettings(), registry, settings, roles=frozenset({"projector"}))
        for _ in range(2)
    )
    await first.start()
    await second.start()
    try:
        assert first.projector is not None
        assert second.projector is None
        await submit(client, ev.WARD, ev.received("HS-P1"))
        await first.projector.wait_until_current()
        await first.stop()
        await until(lambda: second.projector is not None, timeout=TTL * 3, what="a takeover")
        assert second.projector is not None
        await submit(client, ev.WARD, ev.received("HS-P2"))
        await second.projector.wait_until_current()
        found = await report_store.current_report(JetStream(client, 5), ev.WARD, "2021-04")
        assert found is not None
        assert found.report.dossiers.received.new == 2
        assert found.report.revision == 2  # one revision per change, across the takeover
    finally:
        await second.stop()


async def test_a_part_whose_lease_was_taken_is_aborted_and_taken_back_once_it_is_free(
    connections: list[Client],
) -> None:
    calls: list[str] = []

    async def start() -> None:
        calls.append("start")

    async def stop(aborted: bool) -> None:
        calls.append("abort" if aborted else "stop")

    part = LeasedPart(Lease(connections[0], "role", TTL), start, stop)
    await part.start()
    assert part.active
    kv = await connections[1].jetstream().key_value("ONESTOP_LEASES")
    await kv.put("role", b"someone else")  # taken behind its back; not renewed, so it expires
    await until(lambda: not part.active, timeout=TTL * 2, what="the part aborted")
    assert calls == ["start", "abort"]
    await until(lambda: part.active, timeout=TTL * 4, what="the lease taken back")
    await part.stop()
    assert calls == ["start", "abort", "start", "stop"]


async def test_a_part_that_fails_to_start_gives_the_lease_back_and_is_tried_again(
    connections: list[Client],
) -> None:
    calls: list[str] = []

    async def start() -> None:
        calls.append("start")
        if calls.count("start") == 1:
            raise nats.errors.TimeoutError  # the broker away as the part starts

    async def stop(aborted: bool) -> None:
        calls.append("stop")

    kv_client = connections[1]
    await Lease(kv_client, "role", TTL).try_acquire()  # held by another, which then dies
    part = LeasedPart(Lease(connections[0], "role", TTL), start, stop)
    await part.start()
    assert not part.active
    await until(lambda: part.active, timeout=TTL * 4, what="the part started on the second try")
    await part.stop()
    assert calls == ["start", "start", "stop"]


async def test_a_lease_keeps_to_the_buckets_expiry_when_it_is_shorter(
    connections: list[Client],
) -> None:
    first = Lease(connections[0], "role", TTL)  # creates the bucket: keys expire after TTL
    assert await first.try_acquire()
    await first.release()
    longer = Lease(connections[1], "other", TTL * 10)
    assert await longer.try_acquire()
    assert longer.ttl == TTL  # renewing every 5 s would let its key expire under it
