"""On a three-node cluster every stream and bucket lienthong creates is replicated as configured,
so losing one node loses nothing: the log, the reports, the indexes, the outbox, the projector's
checkpoint, the delivery records and the forwarder lease all survive on the other two."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from gateway.embedded import NatsServer
from gateway.node import Node
from gateway.registry import Registry
from gateway.settings import NatsSettings, StreamSettings
from tests import events as ev
from tests.conftest import free_port
from tests.helpers import connected, submit


@pytest.mark.slow
async def test_a_node_on_a_cluster_replicates_every_stream_and_bucket(
    tmp_path: Path, registry: Registry
) -> None:
    routes = [free_port() for _ in range(3)]
    servers = [
        NatsServer(
            tmp_path / f"n{i}",
            port=free_port(),
            name=f"n{i}",
            cluster=(routes[i], [p for j, p in enumerate(routes) if j != i]),
        )
        for i in range(3)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        urls = tuple(s.url for s in servers)
        admin = await stack.enter_async_context(connected(urls[0]))
        js = admin.jetstream(timeout=1.0)
        deadline = time.monotonic() + 30
        while True:  # until the meta leader can place a stream on all three servers
            try:
                await js.add_stream(name="PLACEMENT_PROBE", subjects=["probe.>"], num_replicas=3)
                await js.delete_stream("PLACEMENT_PROBE")
                break
            except Exception:
                assert time.monotonic() < deadline, "no JetStream meta leader with three peers"
                await asyncio.sleep(0.2)
        node = Node(NatsSettings(servers=urls), StreamSettings(replicas=3), registry)
        await node.start()
        stack.push_async_callback(node.stop)
        unit = await stack.enter_async_context(connected(urls[1]))
        assert (await submit(unit, ev.WARD, ev.received("HS-R3")))["ok"] is True
        assert node.projector is not None
        await node.projector.wait_until_current()
        await node.projector.checkpoint()

        names = {info.config.name: info.config.num_replicas for info in await js.streams_info()}
        expected = {
            "ONESTOP_EVENTS",
            "ONESTOP_REPORTS",
            "ONESTOP_EVENT_IDS",
            "ONESTOP_OUTBOX",
            "ONESTOP_SEALS",
            "KV_ONESTOP_DELIVERIES",
            "KV_ONESTOP_LEASES",
            "OBJ_ONESTOP_PROJECTOR",
        }
        assert expected <= set(names)
        assert {name: names[name] for name in expected} == dict.fromkeys(expected, 3)
