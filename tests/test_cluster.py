"""On a three-node cluster every stream and bucket lienthong creates is replicated as configured,
so losing one node loses nothing: the log, the reports, the indexes, the outbox, the projector's
checkpoint, the delivery records, the seals and the leases all survive on the other two. Atomic
batches (a batch's new entities) work on the replicated streams too."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from gateway.intake import NEW_ENTITIES_AT_ONCE
from lienthong.node import Node
from plumbing.settings import NatsSettings, StreamSettings
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import connected, submit, three_node_cluster


@pytest.mark.slow
async def test_a_node_on_a_cluster_replicates_every_stream_and_bucket(
    tmp_path: Path, registry: Registry
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        servers = await stack.enter_async_context(three_node_cluster(tmp_path))
        urls = tuple(s.url for s in servers)
        admin = await stack.enter_async_context(connected(urls[0]))
        js = admin.jetstream(timeout=1.0)
        node = Node(NatsSettings(servers=urls), StreamSettings(replicas=3), registry)
        await node.start()
        stack.push_async_callback(node.stop)
        unit = await stack.enter_async_context(connected(urls[1]))
        assert (await submit(unit, ev.WARD, ev.received("HS-R3")))["ok"] is True
        # A batch of new entities goes in atomic batches, on replicated streams too.
        batch = [ev.received(f"HS-R3-{k}") for k in range(NEW_ENTITIES_AT_ONCE + 10)]
        replies = await submit(unit, ev.WARD, batch, timeout=30)
        assert [r["seq"] for r in replies] == list(range(2, len(batch) + 2))
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
            # The key store has the streams' replicas: losing a node loses no applicant's key.
            "ONESTOP_KEYS",
            "ONESTOP_ERASURES",
            "ONESTOP_DISCLOSURES",
            "KV_ONESTOP_DELIVERIES",
            "KV_ONESTOP_LEASES",
            "OBJ_ONESTOP_PROJECTOR",
        }
        assert expected <= set(names)
        assert {name: names[name] for name in expected} == dict.fromkeys(expected, 3)
