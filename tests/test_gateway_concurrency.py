"""Many gateways, restarts, shutdowns and a lost JetStream leader (CONTRACT sections 3-4).

Everything a gateway knows lives in JetStream, so instances racing on one dossier, a gateway
restarted between two events, or a cluster that lost its quorum must never store an event twice,
never store two closings of a dossier, and never leave a submission unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client

from gateway.service import Gateway
from gateway.submit import SubmitService
from lienthong.embedded import NatsServer
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import EVENT_IDS_STREAM, EVENTS_STREAM, REPORTS_STREAM
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import (
    WRITE_LOST,
    GatewayStarter,
    connected,
    error_of,
    faulty_jetstream,
    last_on_subject,
    log_size,
    log_subjects,
    outlive_the_window,
    submit,
    submit_service,
    three_node_cluster,
)

DOSSIERS = 40


def subject_of(dossier_id: str, unit: str = ev.WARD) -> str:
    return f"onestop.events.{unit}.dossier.{dossier_id}"


@pytest.fixture
async def two_services(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry
) -> AsyncIterator[tuple[SubmitService, SubmitService]]:
    """Two gateways' submit paths, each on its own connection (streams provisioned by `gateway`)."""
    a, nc_a = await submit_service(nats_settings.servers[0], registry)
    b, nc_b = await submit_service(nats_settings.servers[0], registry)
    yield a, b
    await nc_a.close()
    await nc_b.close()


async def call(service: SubmitService, payload: Any, unit: str = ev.WARD) -> Any:
    return msgspec.json.decode(await service.submit(unit, ev.wire(payload)))


async def open_dossiers(client: Client, n: int) -> list[str]:
    ids = [f"HS-{i}" for i in range(n)]
    replies = await submit(client, ev.WARD, [ev.received(d) for d in ids])
    assert all(r["ok"] for r in replies), replies
    return ids


def assert_one_winner(first: Any, second: Any) -> Any:
    """Exactly one of two racing closings is accepted; the other is conflict or unavailable."""
    outcomes = [first["ok"], second["ok"]]
    assert sorted(outcomes) == [False, True], (first, second)
    winner, loser = (first, second) if first["ok"] else (second, first)
    assert winner["duplicate"] is False
    assert error_of(loser)[0] in ("conflict", "unavailable"), loser
    return winner


async def test_two_instances_racing_to_close_a_dossier_store_one_closing(
    two_services: tuple[SubmitService, SubmitService], client: Client
) -> None:
    a, b = two_services
    dossiers = await open_dossiers(client, DOSSIERS)
    closings = {
        d: (ev.dossier_event("resolved", d), ev.dossier_event("withdrawn", d)) for d in dossiers
    }
    replies = await asyncio.gather(
        *(
            call(service, event)
            for d in dossiers
            for service, event in zip((a, b), closings[d], strict=True)
        )
    )
    for n, d in enumerate(dossiers):
        winner = assert_one_winner(replies[2 * n], replies[2 * n + 1])
        stored = await last_on_subject(client, subject_of(d))
        assert stored["event_id"] == winner["event_id"]
    assert await log_subjects(client) == {subject_of(d): 2 for d in dossiers}


async def test_two_instances_racing_with_allowed_changes_store_both(
    two_services: tuple[SubmitService, SubmitService], client: Client
) -> None:
    """The loser of an append race re-judges against the new state instead of failing."""
    a, b = two_services
    dossiers = await open_dossiers(client, DOSSIERS)
    replies = await asyncio.gather(
        *(
            call(service, ev.dossier_event(kind, d))
            for d in dossiers
            for service, kind in ((a, "supplement_requested"), (b, "deadline_changed"))
        )
    )
    assert all(r["ok"] and not r["duplicate"] for r in replies), replies
    assert await log_subjects(client) == {subject_of(d): 3 for d in dossiers}


async def test_two_instances_receiving_the_same_event_store_it_once(
    two_services: tuple[SubmitService, SubmitService], client: Client
) -> None:
    a, b = two_services
    events = [ev.received(f"HS-{i}") for i in range(DOSSIERS)]
    replies = await asyncio.gather(*(call(s, e) for e in events for s in (a, b)))
    for n in range(DOSSIERS):
        pair = replies[2 * n : 2 * n + 2]
        assert all(r["ok"] for r in pair), pair
        assert sorted(r["duplicate"] for r in pair) == [False, True]
        assert pair[0]["seq"] == pair[1]["seq"]
    assert await log_size(client) == DOSSIERS


async def test_two_instances_receiving_the_same_batch_store_it_once(
    two_services: tuple[SubmitService, SubmitService], client: Client
) -> None:
    a, b = two_services
    batch = [ev.received(f"HS-{i}") for i in range(DOSSIERS)] + [ev.copy("SC-1")]
    first, second = await asyncio.gather(call(a, batch), call(b, batch))
    for x, y in zip(first, second, strict=True):
        assert x["ok"], x
        assert y["ok"], y
        assert x["seq"] == y["seq"]
        assert not (x["duplicate"] and y["duplicate"])
    assert await log_size(client) == len(batch)


async def test_two_gateways_in_one_queue_group_racing_on_dossiers(
    gateways: GatewayStarter, nats_server: NatsServer
) -> None:
    await gateways.start()
    await gateways.start()
    async with connected(nats_server.url) as client:
        dossiers = await open_dossiers(client, DOSSIERS)
        closings = [
            (ev.dossier_event("resolved", d), ev.dossier_event("withdrawn", d)) for d in dossiers
        ]
        replies = await asyncio.gather(
            *(submit(client, ev.WARD, event) for pair in closings for event in pair)
        )
        for n, d in enumerate(dossiers):
            winner = assert_one_winner(replies[2 * n], replies[2 * n + 1])
            stored = await last_on_subject(client, subject_of(d))
            assert stored["event_id"] == winner["event_id"]
        assert await log_subjects(client) == {subject_of(d): 2 for d in dossiers}


# --- restarts ------------------------------------------------------------------------------------


async def test_gateway_restart_between_two_events_judges_against_the_log(
    gateways: GatewayStarter, nats_server: NatsServer
) -> None:
    received, resolved = ev.received("HS-1"), ev.dossier_event("resolved", "HS-1")
    first = await gateways.start()
    async with connected(nats_server.url) as client:
        assert (await submit(client, ev.WARD, received))["ok"] is True
    await gateways.stop(first)

    second = await gateways.start()
    async with connected(nats_server.url) as client:
        accepted = await submit(client, ev.WARD, resolved)
        assert accepted["ok"] is True, accepted
        assert accepted["duplicate"] is False
    await gateways.stop(second)

    await gateways.start()
    async with connected(nats_server.url) as client:
        again = ev.dossier_event("resolved", "HS-1", outcome="refused")
        assert error_of(await submit(client, ev.WARD, again))[0] == "conflict"
        assert await submit(client, ev.WARD, resolved) == {**accepted, "duplicate": True}
        returned = await submit(client, ev.WARD, ev.dossier_event("result_returned", "HS-1"))
        assert returned["ok"] is True, returned
        assert await log_size(client) == 3


async def test_gateway_and_server_restart_keep_the_log_and_event_ids(
    nats_server: NatsServer, registry: Registry
) -> None:
    settings = NatsSettings(servers=(nats_server.url,), request_timeout=2.0)
    received = ev.received("HS-1")
    for round_ in range(2):
        gateway = Gateway(settings, StreamSettings(), registry)
        await gateway.start()
        nc = await nats.connect(nats_server.url)
        try:
            reply = await submit(nc, ev.WARD, received)
            assert reply == {
                "ok": True,
                "seq": 1,
                "duplicate": round_ == 1,
                "event_id": received["event_id"],
            }
            if round_ == 1:
                resolved = ev.dossier_event("resolved", "HS-1")
                assert (await submit(nc, ev.WARD, resolved))["ok"] is True
                assert error_of(await submit(nc, ev.WARD, ev.received("HS-1")))[0] == "conflict"
        finally:
            await nc.close()
            await gateway.stop()
        nats_server.stop()
        nats_server.start()


# --- shutdown ------------------------------------------------------------------------------------


async def test_gateway_shutdown_answers_batches_in_flight(
    gateways: GatewayStarter, nats_server: NatsServer
) -> None:
    gateway = await gateways.start()
    async with connected(nats_server.url) as client:
        batch = [ev.copy(f"SC-{i}") for i in range(1000)]
        answer = asyncio.ensure_future(submit(client, ev.WARD, batch, timeout=30))
        deadline = time.monotonic() + 10
        while not gateway.busy:  # until the gateway is working on the batch
            assert not answer.done(), await answer
            assert time.monotonic() < deadline, "the batch never reached the gateway"
            await asyncio.sleep(0.001)
        await gateways.stop(gateway)
        replies = await answer
        assert isinstance(replies, list)
        assert len(replies) == 1000
        assert all(r["ok"] and not r["duplicate"] for r in replies), [
            r for r in replies if not r["ok"]
        ][:3]
        assert await log_size(client) == 1000


async def test_stopped_gateway_takes_no_new_submissions(
    gateways: GatewayStarter, client: Client
) -> None:
    """After a shutdown a submission finds no responder (the client retries): never half-done."""
    gateway = await gateways.start()
    await gateways.stop(gateway)
    with pytest.raises(nats.errors.NoRespondersError):
        await submit(client, ev.WARD, ev.received("HS-1"))
    assert await log_size(client) == 0


# --- a JetStream cluster that loses its leader ---------------------------------------------------


async def _until(what: str, check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except Exception:  # not yet: no meta leader, no stream leader, a peer still catching up
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _streams_have_leaders(client: Client) -> bool:
    js = client.jetstream(timeout=0.5)
    for name in (EVENTS_STREAM, REPORTS_STREAM, EVENT_IDS_STREAM):
        info = await js.stream_info(name)
        if info.cluster is None or not info.cluster.leader:
            return False
    return True


@pytest.mark.slow
async def test_jetstream_leader_gone_is_unavailable_and_safe_to_retry(
    tmp_path: Path, registry: Registry
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        servers = await stack.enter_async_context(three_node_cluster(tmp_path))
        survivor, *lost = servers
        admin = await stack.enter_async_context(connected(survivor.url))
        gateway = Gateway(
            NatsSettings(servers=(survivor.url,), request_timeout=1.0),
            StreamSettings(replicas=3),
            registry,
        )
        stack.push_async_callback(gateway.stop)  # also closes its connection if start fails
        await gateway.start()
        await _until("stream leaders", lambda: _streams_have_leaders(admin))
        client = await stack.enter_async_context(connected(survivor.url))
        assert (await submit(client, ev.WARD, ev.received("HS-0")))["ok"] is True

        for server in lost:
            server.kill()
        batch = [
            ev.dossier_event("resolved", "HS-0"),
            ev.received("HS-1"),
            ev.document("VB-1"),
            ev.copy("SC-1"),
        ]
        # The client waits far longer than the gateway's own JetStream timeout (1 s): the
        # gateway must answer, not leave the request to time out.
        replies = await submit(client, ev.WARD, batch, timeout=10.0)
        assert [error_of(r)[0] for r in replies] == ["unavailable"] * len(batch)
        assert [r["event_id"] for r in replies] == [e["event_id"] for e in batch]

        await asyncio.gather(*(asyncio.to_thread(s.start) for s in lost))
        await _until("stream leaders again", lambda: _streams_have_leaders(admin))
        deadline = time.monotonic() + 30
        while True:
            replies = await submit(client, ev.WARD, batch, timeout=10.0)
            assert all(r["ok"] or error_of(r)[0] == "unavailable" for r in replies), replies
            if all(r["ok"] for r in replies):
                break
            assert time.monotonic() < deadline, replies
            await asyncio.sleep(0.2)
        again = await submit(client, ev.WARD, batch, timeout=10.0)
        assert again == [{**r, "duplicate": True} for r in replies]
        assert await log_size(client) == 1 + len(batch)
        assert (await log_subjects(client))[subject_of("HS-0")] == 2


# --- an event_id's claim taken over while its first write is in flight ---------------------------


class Gate:
    """Holds the first JetStream write whose subject starts with `prefix` until released."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def passing(self, subject: str) -> None:
        if subject.startswith(self.prefix) and not self.reached.is_set():
            self.reached.set()
            await self.release.wait()


def gated(*gates: Gate) -> type[JetStream]:
    async def passing(subject: str) -> None:
        for gate in gates:
            await gate.passing(subject)

    return faulty_jetstream(before=passing)


async def held_or_done(gate: Gate, task: asyncio.Task[Any]) -> None:
    """Until `task` is held at `gate`, or has finished without reaching it."""
    reached = asyncio.create_task(gate.reached.wait())
    await asyncio.wait({reached, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    reached.cancel()
    assert gate.reached.is_set() or task.done()


async def test_a_claim_for_another_entity_is_not_taken_over_while_its_write_is_in_flight(
    short_window: Gateway, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    """A's write of X is held after A claimed the event_id; B submits the same id for another
    entity. Had B taken the claim over, the index would point at B's entity, and X resent after
    JetStream's window would be stored a second time."""
    assert (await submit(client, ev.WARD, ev.received("HS-1")))["ok"] is True
    x = ev.dossier_event("supplement_requested", "HS-1", event_id="E-race")
    y = ev.document("VB-1", event_id="E-race")
    held_a, held_b = Gate("onestop.events."), Gate("onestop.events.")
    a, nc_a = await submit_service(nats_settings.servers[0], registry, gated(held_a))
    b, nc_b = await submit_service(nats_settings.servers[0], registry, gated(held_b))
    try:
        task_a = asyncio.create_task(call(a, x))
        await asyncio.wait_for(held_a.reached.wait(), 10)
        task_b = asyncio.create_task(call(b, y))
        await held_or_done(held_b, task_b)
        held_a.release.set()
        reply_a = await task_a
        held_b.release.set()
        reply_b = await task_b
    finally:
        await nc_a.close()
        await nc_b.close()
    assert (reply_a["ok"], reply_a["duplicate"]) == (True, False), reply_a
    assert error_of(reply_b)[0] in ("conflict", "unavailable"), reply_b
    await outlive_the_window(client, x["unit"], x["event_id"], subject_of("HS-1"))
    assert await submit(client, ev.WARD, x) == {**reply_a, "duplicate": True}
    assert error_of(await submit(client, ev.WARD, y))[0] == "conflict"
    assert await log_subjects(client) == {subject_of("HS-1"): 2}


async def test_a_claim_made_on_a_newer_state_is_not_taken_over_while_its_write_is_in_flight(
    short_window: Gateway, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    """B judged X on the dossier before Z; A judged it after Z and claimed it. Had B taken the
    claim over (pointing before Z), the index would miss A's X, and X resent after the window
    would be stored a second time."""
    assert (await submit(client, ev.WARD, ev.received("HS-1")))["ok"] is True
    x = ev.dossier_event("supplement_requested", "HS-1")
    claim_b, write_b = Gate("onestop.eventids."), Gate("onestop.events.")
    write_a = Gate("onestop.events.")
    a, nc_a = await submit_service(nats_settings.servers[0], registry, gated(write_a))
    b, nc_b = await submit_service(nats_settings.servers[0], registry, gated(claim_b, write_b))
    try:
        task_b = asyncio.create_task(call(b, x))  # B reads the dossier, then is held
        await asyncio.wait_for(claim_b.reached.wait(), 10)
        z = ev.dossier_event("deadline_changed", "HS-1")
        assert (await submit(client, ev.WARD, z))["ok"] is True
        task_a = asyncio.create_task(call(a, x))  # A reads the dossier with Z, claims X
        await asyncio.wait_for(write_a.reached.wait(), 10)
        claim_b.release.set()
        await held_or_done(write_b, task_b)
        write_a.release.set()
        reply_a = await task_a
        write_b.release.set()
        reply_b = await task_b
    finally:
        await nc_a.close()
        await nc_b.close()
    assert (reply_a["ok"], reply_a["duplicate"]) == (True, False), reply_a
    if reply_b["ok"]:
        assert reply_b == {**reply_a, "duplicate": True}
    else:
        assert error_of(reply_b)[0] == "unavailable"
    await outlive_the_window(client, x["unit"], x["event_id"], subject_of("HS-1"))
    assert await submit(client, ev.WARD, x) == {**reply_a, "duplicate": True}
    assert await log_subjects(client) == {subject_of("HS-1"): 3}


async def test_a_lost_writes_claim_is_taken_over_once_older_than_the_window(
    gateways: GatewayStarter, nats_settings: NatsSettings, registry: Registry
) -> None:
    """The claim of a write that never reached the log, made on an older state of the dossier,
    is given up once no write of it can still land: until then, `unavailable`."""
    window = 4.0  # long enough for the three submissions below on a loaded 2-core machine
    await gateways.start(streams=StreamSettings(duplicate_window_seconds=window))
    async with connected(nats_settings.servers[0]) as client:
        await _a_lost_writes_claim(client, nats_settings, registry, window)


async def _a_lost_writes_claim(
    client: Client, nats_settings: NatsSettings, registry: Registry, window: float
) -> None:
    assert (await submit(client, ev.WARD, ev.received("HS-1")))["ok"] is True
    x = ev.dossier_event("supplement_requested", "HS-1")
    lost, nc = await submit_service(nats_settings.servers[0], registry, WRITE_LOST)
    try:
        claimed = time.monotonic()
        assert error_of(await call(lost, x))[0] == "unavailable"
    finally:
        await nc.close()
    assert (await submit(client, ev.WARD, ev.dossier_event("deadline_changed", "HS-1")))["ok"]
    assert error_of(await submit(client, ev.WARD, x))[0] == "unavailable"
    assert time.monotonic() - claimed < window, "too slow to see the claim while it holds"
    while (reply := await submit(client, ev.WARD, x))["ok"] is False:
        assert error_of(reply)[0] == "unavailable", reply
        assert time.monotonic() - claimed < 5 * window + 5, "the claim was never given up"
        await asyncio.sleep(window / 8)
    assert reply["duplicate"] is False
    assert await submit(client, ev.WARD, x) == {**reply, "duplicate": True}
    assert await log_subjects(client) == {subject_of("HS-1"): 3}
