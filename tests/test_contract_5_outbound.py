"""CONTRACT section 5, outbound: a unit's interconnected dossiers reach the province, in order.

Every test runs the gateway, the two outbound stages (outbox translator, delivery worker) and a
province simulator against a real nats-server; the province is made to fail in the ways the
contract names (down for a while, answers lost, one dossier refused) and the forwarder is
crashed mid-delivery, and the province's view after its own deduplication must be complete, in
each dossier's order, and free of personal data.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from consumers.audit.export import export
from consumers.audit.export import selection as export_selection
from consumers.audit.history import dossier_history
from consumers.audit.rebuild import rebuild
from consumers.audit.verify import verify
from consumers.interconnect.delivery import DeliveryWorker
from consumers.interconnect.forwarder import Forwarder
from consumers.interconnect.outbox import DOSSIER_EVENTS, OutboxMessage, OutboxTranslator
from consumers.interconnect.pending import records_for_dossier, resume_parked
from consumers.interconnect.settings import ForwarderSettings, OutboxSettings
from consumers.interconnect.status import delivery_status, status_table
from gateway.service import Gateway
from lienthong.demo.province_sim import ProvinceSettings, ProvinceSimulator
from lienthong.embedded import NatsServer
from plumbing.headers import ORIGIN
from plumbing.records import RECORDS_BUCKET, DeliveryStatus
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import EVENTS_STREAM, OUTBOX_STREAM
from schemas.interconnect import Envelope, EnvelopeKind
from schemas.periods import VN, now_vn
from schemas.registry import Registry, RegistryFile
from tests import events as ev
from tests.helpers import log_size, submit, until

NAME = "Trần Thị Bí Mật"
ID_NUMBER = "079301000123"
APPLICANT = {"name": NAME, "id_number": ID_NUMBER}

FAST = ForwarderSettings(
    ack_wait=2.0,
    outbox=OutboxSettings(ack_wait=2.0),
    first_delay=0.02,
    max_delay=0.25,
    request_timeout=0.5,
    parked_poll=0.1,
    record_every=0.2,
)
_ENVELOPE = msgspec.json.Decoder(Envelope)


# -- harness -----------------------------------------------------------------------------------


class ForwarderProcess:
    """The forwarder role on its own connection, as a process runs it (without its lease)."""

    def __init__(self, url: str, registry: Registry, settings: ForwarderSettings) -> None:
        self.url = url
        self.registry = registry
        self.settings = settings

    async def start(self) -> ForwarderProcess:
        self.client = await nats.connect(self.url)
        self.forwarder = Forwarder(self.client, self.registry, self.settings)
        await self.forwarder.start()
        return self

    async def stop(self) -> None:
        await self.forwarder.stop()
        await self.client.close()

    async def crash(self) -> None:
        """Tasks cancelled mid-request, connection gone, nothing more acknowledged."""
        await self.forwarder.abort()
        await self.client.close()


class Harness:
    def __init__(self, url: str, registry: Registry) -> None:
        self.url = url
        self.registry = registry
        self.forwarders: list[ForwarderProcess] = []
        self.provinces: list[tuple[ProvinceSimulator, Client]] = []

    async def forwarder(
        self, settings: ForwarderSettings = FAST, registry: Registry | None = None
    ) -> ForwarderProcess:
        f = await ForwarderProcess(self.url, registry or self.registry, settings).start()
        self.forwarders.append(f)
        return f

    async def stop(self, f: ForwarderProcess, *, crash: bool = False) -> None:
        self.forwarders.remove(f)
        await (f.crash() if crash else f.stop())

    async def province(self, **settings: Any) -> ProvinceSimulator:
        settings.setdefault("results", False)
        settings.setdefault("request_timeout", 2.0)
        settings.setdefault("retry_delay", 0.05)
        nc = await nats.connect(self.url)
        sim = ProvinceSimulator(nc, ProvinceSettings(**settings))
        await sim.start()
        self.provinces.append((sim, nc))
        return sim

    async def close(self) -> None:
        for sim, nc in self.provinces:
            await sim.stop()
            await nc.close()
        for f in reversed(self.forwarders):
            await f.stop()


@pytest.fixture
async def harness(nats_server: NatsServer, gateway: Gateway) -> AsyncIterator[Harness]:
    h = Harness(nats_server.url, gateway.registry)
    yield h
    await h.close()


@pytest.fixture
async def unit(gateway: Gateway, nats_server: NatsServer) -> AsyncIterator[Client]:
    """A unit's connection, opened once the gateway serves."""
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


async def outbox_size(client: Client) -> int:
    info = await client.jetstream().stream_info(OUTBOX_STREAM)
    messages: int = info.state.messages
    return messages


async def settled(client: Client) -> bool:
    """Every dossier event translated and every owed message delivered."""
    info = await client.jetstream().consumer_info(EVENTS_STREAM, FAST.outbox.durable)
    return info.num_pending == 0 and info.num_ack_pending == 0 and await outbox_size(client) == 0


async def accepted(client: Client, unit: str, events: list[dict[str, Any]]) -> list[int]:
    """Submit in batches of up to 1,000; every event must be accepted; their sequences."""
    seqs: list[int] = []
    for i in range(0, len(events), 1000):
        replies = await submit(client, unit, events[i : i + 1000], timeout=30.0)
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]
        seqs += [r["seq"] for r in replies]
    return seqs


def lifecycle(dossier_id: str, unit: str = ev.WARD) -> list[dict[str, Any]]:
    """A dossier received (with an applicant), transferred to the province, then changed twice."""
    return [
        ev.received(dossier_id, unit, applicant=APPLICANT),
        ev.dossier_event("transferred", dossier_id, unit, interconnect=True),
        ev.dossier_event(
            "deadline_changed",
            dossier_id,
            unit,
            occurred_at="2021-04-09T10:00:00+07:00",
            due_at="2021-04-22T17:00:00+07:00",
        ),
        ev.dossier_event("resolved", dossier_id, unit, occurred_at="2021-04-10T10:00:00+07:00"),
    ]


def expected_ids(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per dossier, the message_ids the province must see, in order (all but the receipt)."""
    out: dict[str, list[str]] = {}
    for e in events:
        if e["type"] != "dossier.received":
            out.setdefault(e["dossier_id"], []).append(f"{e['unit']}:{e['event_id']}")
    return out


def assert_in_order(sim: ProvinceSimulator, events: list[dict[str, Any]]) -> None:
    for dossier_id, ids in expected_ids(events).items():
        unit = next(e["unit"] for e in events if e["dossier_id"] == dossier_id)
        assert sim.order(unit, dossier_id) == ids, dossier_id


def assert_no_personal_data(sim: ProvinceSimulator) -> None:
    assert sim.payloads
    for payload in sim.payloads:
        text = payload.decode()
        assert NAME not in text
        assert ID_NUMBER not in text
        assert '"applicant"' not in text


# -- what the province receives -----------------------------------------------------------------


async def test_a_transfer_reaches_the_province_with_the_dossiers_facts_and_no_personal_data(
    harness: Harness, unit: Client
) -> None:
    sim = await harness.province()
    await harness.forwarder()
    events = lifecycle("HS-2021/04.001")[:2]
    await accepted(unit, ev.WARD, events)
    await until(lambda: sim.received_unique == 1, what="the transfer")
    assert sim.subjects == {f"province.52.inbox.{ev.WARD}"}
    [envelope] = sim.messages.values()
    assert envelope.kind is EnvelopeKind.TRANSFER
    assert envelope.message_id == f"{ev.WARD}:{events[1]['event_id']}"
    assert (envelope.unit, envelope.dossier_id) == (ev.WARD, "HS-2021/04.001")
    assert msgspec.json.decode(envelope.body) == {
        "procedure_code": "1.001612",
        "channel": "direct",
        "service_level": None,
        "received_at": "2021-04-05T08:00:00+07:00",
        "due_at": "2021-04-12T17:00:00+07:00",
        "to_agency": "000.00.12.H08",
    }
    assert_no_personal_data(sim)


async def test_a_province_entitled_to_personal_data_receives_the_applicant(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    default = Registry.load()
    units = [default[c] for c in default.codes()]
    units = [
        msgspec.structs.replace(u, entitled_to_personal_data=True) if u.code == ev.PROVINCE else u
        for u in units
    ]
    path = tmp_path / "registry.json"
    path.write_bytes(msgspec.json.encode(RegistryFile(units=units)))
    registry = Registry.load(path)
    gateway = Gateway(NatsSettings(servers=(nats_server.url,)), StreamSettings(), registry)
    await gateway.start()
    harness = Harness(nats_server.url, registry)
    try:
        sim = await harness.province()
        await harness.forwarder()
        async with await nats.connect(nats_server.url) as nc:
            await accepted(nc, ev.WARD, lifecycle("HS-E1")[:2])
        await until(lambda: sim.received_unique == 1, what="the transfer")
        [envelope] = sim.messages.values()
        body = msgspec.json.decode(envelope.body)
        assert body["applicant"] == APPLICANT
    finally:
        await harness.close()
        await gateway.stop()


async def test_later_events_of_the_dossier_arrive_as_status_in_their_order(
    harness: Harness, unit: Client
) -> None:
    sim = await harness.province()
    await harness.forwarder()
    d = "HS-S1"
    events = [
        ev.received(d, applicant=APPLICANT),
        # Before the transfer: the province learns the deadline from the transfer itself.
        ev.dossier_event(
            "deadline_changed", d, occurred_at="2021-04-06T10:00:00+07:00", reason="supplement"
        ),
        ev.dossier_event(
            "transferred", d, occurred_at="2021-04-07T10:00:00+07:00", interconnect=True
        ),
        ev.dossier_event("supplement_requested", d, occurred_at="2021-04-08T10:00:00+07:00"),
        ev.dossier_event("transferred", d, occurred_at="2021-04-08T11:00:00+07:00"),
        ev.dossier_event("resolved", d, occurred_at="2021-04-09T10:00:00+07:00", outcome="refused"),
        ev.dossier_event("result_returned", d, occurred_at="2021-04-10T10:00:00+07:00"),
    ]
    # Another dossier, never interconnected: nothing of it goes to the province.
    others = [ev.received("HS-S2"), ev.dossier_event("resolved", "HS-S2")]
    await accepted(unit, ev.WARD, events + others)
    await until(lambda: settled(unit), what="delivery")
    sent = list(sim.messages.values())
    assert [m.message_id for m in sent] == [f"{ev.WARD}:{e['event_id']}" for e in events[2:]]
    assert [m.kind for m in sent] == [EnvelopeKind.TRANSFER] + [EnvelopeKind.STATUS] * 4
    transfer = msgspec.json.decode(sent[0].body)
    assert transfer["due_at"] == "2021-04-20T17:00:00+07:00"  # the deadline as changed
    statuses = [msgspec.json.decode(m.body) for m in sent[1:]]
    assert [s["event_type"] for s in statuses] == [
        "dossier.supplement_requested",
        "dossier.transferred",
        "dossier.resolved",
        "dossier.result_returned",
    ]
    assert statuses[2] == {
        "note": "resolved: refused",
        "event_type": "dossier.resolved",
        "occurred_at": "2021-04-09T10:00:00+07:00",
    }
    assert "thiếu" not in str(statuses)  # a unit's free-text note is not passed on
    assert_no_personal_data(sim)


async def test_the_provinces_own_result_is_stored_but_not_sent_back(
    harness: Harness, unit: Client
) -> None:
    sim = await harness.province(results=True)
    await harness.forwarder()
    await accepted(unit, ev.WARD, lifecycle("HS-R1")[:2])
    await until(lambda: sim.results_acknowledged == 1, what="the province's result")
    assert sim.receipts_acknowledged == 1
    await until(lambda: settled(unit), what="the translator to pass the result")
    assert list(sim.by_kind) == ["transfer"]  # no status for the province's own result
    assert await log_size(unit) == 3  # received, transferred, the province's resolution


# -- the province failing ------------------------------------------------------------------------


async def test_a_province_down_for_a_while_then_up_gets_everything_once_in_order(
    harness: Harness, unit: Client
) -> None:
    await harness.forwarder()
    events = [e for n in range(15) for e in lifecycle(f"HS-D{n}")]
    await accepted(unit, ev.WARD, events)

    async def retried() -> bool:
        records = await records_for_dossier(unit, ev.WARD, "HS-D0")
        return bool(records) and records[0].attempts >= 3

    await until(retried, what="retries while the province is down")
    [row] = await delivery_status(unit)
    assert (row.unit, row.pending, row.dossiers, row.parked) == (ev.WARD, 45, 15, 0)
    assert row.last_error is not None
    assert "no responders" in row.last_error
    table = status_table([row], harness.registry, now_vn())
    assert "Phường Nhơn Bình" in table
    assert "no responders" in table

    sim = await harness.province()
    await until(lambda: settled(unit), what="delivery once the province is up")
    assert sim.received_unique == 45
    assert_in_order(sim, events)
    assert_no_personal_data(sim)
    [transfer, *statuses] = await records_for_dossier(unit, ev.WARD, "HS-D0")
    assert transfer.status is DeliveryStatus.DELIVERED
    assert transfer.attempts >= 3
    assert transfer.acknowledged_at is not None
    assert transfer.first_attempt_at is not None
    assert transfer.acknowledged_at > transfer.first_attempt_at
    assert transfer.last_error is not None
    assert "no responders" in transfer.last_error
    assert [s.status for s in statuses] == [DeliveryStatus.DELIVERED] * 2
    assert await delivery_status(unit) == []


async def test_a_province_that_loses_every_fourth_answer_gets_everything_in_order(
    harness: Harness, unit: Client
) -> None:
    sim = await harness.province(drop_every=4)
    await harness.forwarder()
    events = [e for n in range(20) for e in lifecycle(f"HS-L{n}")]
    await accepted(unit, ev.WARD, events)
    await until(lambda: settled(unit), what="delivery")
    assert sim.received_unique == 60
    assert sim.resends >= 60 // 4 - 1  # each lost answer made the gateway send again
    assert sim.requests == sim.received_unique + sim.resends
    assert_in_order(sim, events)
    attempts = [
        r.attempts for n in range(20) for r in await records_for_dossier(unit, ev.WARD, f"HS-L{n}")
    ]
    assert len(attempts) == 60
    assert sum(attempts) == sim.requests


async def test_the_forwarder_crashing_mid_delivery_loses_nothing_and_keeps_order(
    harness: Harness, unit: Client
) -> None:
    sim = await harness.province(delay=0.1)
    f = await harness.forwarder()
    events = [e for n in range(30) for e in lifecycle(f"HS-K{n}", ev.OTHER_WARD)]
    await accepted(unit, ev.OTHER_WARD, events)
    await until(lambda: sim.requests >= 20, what="deliveries under way")
    await harness.stop(f, crash=True)  # answers in flight are lost with it
    seen = sim.received_unique
    assert seen < 90
    await harness.forwarder()
    await until(lambda: settled(unit), what="delivery after the restart")
    assert sim.received_unique == 90
    assert_in_order(sim, events)


async def test_a_killed_forwarder_process_resumes_after_restart(
    nats_server: NatsServer, harness: Harness, unit: Client, subprocess_env: dict[str, str]
) -> None:
    sim = await harness.province(delay=0.05)
    env = {
        **subprocess_env,
        "LIENTHONG_FORWARDER_ACK_WAIT": "2",
        "LIENTHONG_FORWARDER_FIRST_DELAY": "0.02",
        "LIENTHONG_FORWARDER_MAX_DELAY": "0.25",
        "LIENTHONG_FORWARDER_REQUEST_TIMEOUT": "0.5",
        # The killed process's lease expires soon, so the restarted one takes over soon.
        "LIENTHONG_FORWARDER_LEASE_TTL": "2",
    }
    command = [sys.executable, "-m", "lienthong.cli", "serve", "--roles", "forwarder"]
    command += ["--nats-url", nats_server.url]

    async def serve() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )

    events = [e for n in range(40) for e in lifecycle(f"HS-P{n}")]
    first = await serve()
    try:
        await accepted(unit, ev.WARD, events)
        await until(lambda: sim.requests >= 10, timeout=30.0, what="the process delivering")
        first.send_signal(signal.SIGKILL)
        await asyncio.wait_for(first.wait(), 10)
        assert sim.received_unique < 120
        second = await serve()
        try:
            await until(lambda: settled(unit), timeout=30.0, what="delivery after the restart")
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 20) == 0
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert sim.received_unique == 120
    assert_in_order(sim, events)
    assert_no_personal_data(sim)


async def test_one_stuck_dossier_among_a_thousand_holds_back_no_other_then_parks_and_resumes(
    nats_server: NatsServer, harness: Harness, unit: Client
) -> None:
    stuck = "HS-STUCK"
    sim = await harness.province(refuse=frozenset({stuck}))
    await harness.forwarder(msgspec.structs.replace(FAST, park_after=3.0))
    ids = [stuck] + [f"HS-M{n:04d}" for n in range(999)]  # first in the outbox
    await accepted(unit, ev.WARD, [ev.received(d, applicant=APPLICANT) for d in ids])
    transfers = [ev.dossier_event("transferred", d, interconnect=True) for d in ids]
    await accepted(unit, ev.WARD, transfers)
    # The stuck dossier's later event waits behind its transfer, for order.
    later = ev.dossier_event("resolved", stuck)
    await accepted(unit, ev.WARD, [later])
    await until(lambda: sim.received_unique == 999, what="every other dossier")
    # All of them delivered while the stuck one was still being retried, not yet parked.
    [head] = (await records_for_dossier(unit, ev.WARD, stuck))[:1]
    assert head.status is DeliveryStatus.PENDING
    assert sim.refused >= 2
    assert stuck not in {m.dossier_id for m in sim.messages.values()}

    async def parked() -> bool:
        records = await records_for_dossier(unit, ev.WARD, stuck)
        return bool(records) and records[0].status is DeliveryStatus.PARKED

    await until(parked, what="the stuck dossier to park")
    [row] = await delivery_status(unit)
    assert (row.pending, row.dossiers, row.parked) == (2, 1, 1)
    assert row.last_error is not None
    assert "not acknowledged" in row.last_error
    attempts = sim.refused
    await asyncio.sleep(0.5)
    assert sim.refused == attempts  # parked: no more attempts

    sim.refuse.clear()  # the province fixes its side; the operator resumes
    resume = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "lienthong.cli", "resume-delivery", "--unit", ev.WARD],
        *["--dossier", stuck, "--nats-url", nats_server.url],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(resume.communicate(), timeout=30)
    assert resume.returncode == 0
    assert "1 parked deliveries set back to pending" in out.decode()
    await until(lambda: settled(unit), what="the resumed dossier")
    assert sim.order(ev.WARD, stuck) == [
        f"{ev.WARD}:{transfers[0]['event_id']}",
        f"{ev.WARD}:{later['event_id']}",
    ]
    [transfer, status] = await records_for_dossier(unit, ev.WARD, stuck)
    assert transfer.status is DeliveryStatus.DELIVERED
    assert transfer.attempts == attempts + 1
    assert transfer.resumed_at is not None
    assert status.status is DeliveryStatus.DELIVERED
    assert status.attempts == 1
    assert await resume_parked(unit) == []
    assert_no_personal_data(sim)


# -- replay --------------------------------------------------------------------------------------


async def test_replaying_the_log_sends_nothing_to_the_province(
    harness: Harness, unit: Client, registry: Registry
) -> None:
    sim = await harness.province()
    f = await harness.forwarder()
    events = [e for n in range(10) for e in lifecycle(f"HS-Y{n}")]
    await accepted(unit, ev.WARD, events)
    await until(lambda: settled(unit), what="delivery")
    before = sim.requests
    assert sim.received_unique == 30

    # Every replay an operator can run (CONTRACT section 7), on the live log the province hears.
    rebuilt = await rebuild(unit, registry)
    assert "2021-04" in rebuilt.book.periods(ev.WARD)
    exported = io.BytesIO()
    assert await export(unit, export_selection(registry, "2021-04"), exported) == len(events)
    assert (await verify(unit)).intact
    assert len(await dossier_history(unit, ev.WARD, "HS-Y0")) >= len(lifecycle("HS-Y0"))
    assert sim.requests == before
    # The forwarder restarting on the same log.
    await harness.stop(f)
    await harness.forwarder()
    await asyncio.sleep(1.0)
    assert await settled(unit)
    assert sim.requests == before
    assert await outbox_size(unit) == 0


async def test_delivery_records_stay_out_of_the_event_log(harness: Harness, unit: Client) -> None:
    sim = await harness.province(drop_every=2)
    await harness.forwarder()
    events = lifecycle("HS-N1")
    seqs = await accepted(unit, ev.WARD, events)
    await until(lambda: settled(unit), what="delivery")
    assert await log_size(unit) == len(events)
    records = await records_for_dossier(unit, ev.WARD, "HS-N1")
    assert [r.event_seq for r in records] == seqs[1:]
    assert [r.kind for r in records] == [
        EnvelopeKind.TRANSFER,
        EnvelopeKind.STATUS,
        EnvelopeKind.STATUS,
    ]
    assert all(r.status is DeliveryStatus.DELIVERED and r.acknowledged_at for r in records)
    assert sum(r.attempts for r in records) == sim.requests
    # The unit goes on with the dossier as if no delivery had happened.
    reply = await submit(unit, ev.WARD, ev.dossier_event("result_returned", "HS-N1"))
    assert reply["ok"] is True
    assert reply["seq"] == seqs[-1] + 1


async def test_a_province_that_takes_requests_but_never_answers_gets_everything_once_it_does(
    harness: Harness, unit: Client
) -> None:
    silent = await harness.province(down=True)  # listening, never answering
    await harness.forwarder()
    events = [e for n in range(3) for e in lifecycle(f"HS-Q{n}")]
    await accepted(unit, ev.WARD, events)

    async def retried() -> bool:
        records = await records_for_dossier(unit, ev.WARD, "HS-Q0")
        return bool(records) and records[0].attempts >= 3

    await until(retried, what="retries while the province says nothing")
    [head] = (await records_for_dossier(unit, ev.WARD, "HS-Q0"))[:1]
    assert head.status is DeliveryStatus.PENDING
    assert head.last_error is not None
    assert "no answer from the province" in head.last_error
    assert silent.unanswered >= 3
    harness.provinces.remove((silent, silent.client))
    await silent.stop()
    await silent.client.close()

    sim = await harness.province()
    await until(lambda: settled(unit), what="delivery once the province answers")
    assert sim.received_unique == 9
    assert_in_order(sim, events)
    records = [r for n in range(3) for r in await records_for_dossier(unit, ev.WARD, f"HS-Q{n}")]
    assert [r.status for r in records] == [DeliveryStatus.DELIVERED] * 9


def test_the_backoff_grows_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = DeliveryWorker(
        Client(), Registry.load(), ForwarderSettings(first_delay=0.5, max_delay=300.0)
    )
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each draw
    tops = [worker._backoff(run) for run in range(1, 16)]
    assert tops[:4] == [0.5, 1.0, 2.0, 4.0]
    assert tops == sorted(tops)
    assert tops[-1] == 300.0
    assert worker._backoff(10_000) == 300.0
    monkeypatch.setattr(random, "uniform", lambda low, high: low)  # full jitter: from zero
    assert worker._backoff(5) == 0.0


async def test_a_delivery_whose_record_cannot_be_written_stays_owed(
    harness: Harness, unit: Client
) -> None:
    sim = await harness.province(delay=1.0)
    f = await harness.forwarder(msgspec.structs.replace(FAST, request_timeout=3.0))
    await accepted(unit, ev.WARD, lifecycle("HS-W1")[:2])
    await until(lambda: sim.requests == 1, what="the transfer's request")
    # While the province takes its time, the records bucket goes away: the acknowledged
    # delivery cannot be recorded, and the worker is stopped while it keeps trying.
    await unit.jetstream().delete_key_value(RECORDS_BUCKET)
    await asyncio.sleep(1.5)
    assert sim.received_unique == 1
    await harness.stop(f)
    assert await outbox_size(unit) == 1  # not acknowledged: nothing says it was delivered

    await harness.forwarder(msgspec.structs.replace(FAST, request_timeout=3.0))  # new bucket
    await until(lambda: settled(unit), what="delivery and its record after the restart")
    [record] = await records_for_dossier(unit, ev.WARD, "HS-W1")
    assert record.status is DeliveryStatus.DELIVERED
    assert sim.resends == 1  # sent again, the same message_id: the province deduplicates


class FlakyTranslator(OutboxTranslator):
    """Fails in the middle of a batch: a nats error, then an unexpected one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: list[Exception] = [
            nats.errors.ConnectionReconnectingError(),
            RuntimeError("a bug"),
        ]

    async def translate(self, msg: Msg) -> OutboxMessage | None:
        if self.failures:
            raise self.failures.pop(0)
        return await super().translate(msg)


async def test_an_error_while_translating_a_batch_is_retried_never_fatal(
    harness: Harness, unit: Client, nats_server: NatsServer
) -> None:
    sim = await harness.province()
    nc = await nats.connect(nats_server.url)
    outbox = FlakyTranslator(nc, harness.registry, FAST.outbox)
    delivery = DeliveryWorker(nc, harness.registry, FAST)
    await outbox.start()
    await delivery.start()
    try:
        events = lifecycle("HS-F1")
        await accepted(unit, ev.WARD, events)
        await until(lambda: settled(unit), what="delivery after the errors")
        assert outbox.failures == []
        assert_in_order(sim, events)
    finally:
        await delivery.stop()
        await outbox.stop()
        await nc.close()


async def test_an_ack_from_one_translator_never_acknowledges_another_ones_batch(
    harness: Harness, unit: Client, nats_server: NatsServer
) -> None:
    sim = await harness.province()
    await harness.stop(await harness.forwarder())  # the consumers exist; nothing runs
    await accepted(unit, ev.WARD, lifecycle("HS-T1")[:2])
    # Another translator process takes HS-T1's events and dies before publishing them.
    other = await nats.connect(nats_server.url)
    sub = await other.jetstream().pull_subscribe_bind(FAST.outbox.durable, stream=EVENTS_STREAM)
    assert len(await sub.fetch(10, timeout=5)) == 2
    await other.close()
    await accepted(unit, ev.WARD, lifecycle("HS-T2")[:2])
    await harness.forwarder()  # translates HS-T2, and acks it
    await until(lambda: sim.received_unique == 2, what="both transfers")
    assert {m.dossier_id for m in sim.messages.values()} == {"HS-T1", "HS-T2"}


async def test_a_translator_consumer_of_an_earlier_version_is_replaced_where_it_stopped(
    harness: Harness, unit: Client
) -> None:
    sim = await harness.province()
    js = unit.jetstream()
    await accepted(unit, ev.WARD, lifecycle("HS-V1")[:2])
    # The earlier version's consumer (AckPolicy.ALL) translated HS-V1 and acknowledged it.
    await js.add_consumer(
        EVENTS_STREAM,
        ConsumerConfig(
            durable_name=FAST.outbox.durable,
            ack_policy=AckPolicy.ALL,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=DOSSIER_EVENTS,
            ack_wait=2.0,
            max_deliver=-1,
        ),
    )
    sub = await js.pull_subscribe_bind(FAST.outbox.durable, stream=EVENTS_STREAM)
    msgs = await sub.fetch(10, timeout=5)
    await msgs[-1].ack_sync()
    await sub.unsubscribe()
    await accepted(unit, ev.WARD, lifecycle("HS-V2")[:2])
    f = await harness.forwarder()
    await until(lambda: settled(unit), what="the new dossier")
    assert [m.dossier_id for m in sim.messages.values()] == ["HS-V2"]
    info = await js.consumer_info(EVENTS_STREAM, FAST.outbox.durable)
    assert info.config.ack_policy == AckPolicy.EXPLICIT
    await harness.stop(f)
    await accepted(unit, ev.WARD, lifecycle("HS-V3")[:2])
    await harness.forwarder()  # restarts on the replaced consumer, where it stood
    await until(lambda: settled(unit), what="the next dossier")
    assert [m.dossier_id for m in sim.messages.values()] == ["HS-V2", "HS-V3"]


async def test_the_provinces_supplement_request_is_a_dossier_event_not_sent_back(
    harness: Harness, unit: Client
) -> None:
    sim = await harness.province(results=True, supplement_every=1)
    await harness.forwarder()
    events = lifecycle("HS-U1")[:2]
    await accepted(unit, ev.WARD, events)
    await until(lambda: sim.results_acknowledged == 1, what="the province's answers")
    assert (sim.supplements_sent, sim.supplements_acknowledged) == (1, 1)
    await until(lambda: settled(unit), what="the translator to pass them")
    assert list(sim.by_kind) == ["transfer"]  # neither answer came back as `status`
    js = unit.jetstream()
    stored = [await js.get_msg(EVENTS_STREAM, seq) for seq in range(1, 5)]
    assert await log_size(unit) == 4
    types = [msgspec.json.decode(m.data or b"{}")["type"] for m in stored]
    assert types[2:] == ["dossier.supplement_requested", "dossier.resolved"]
    assert all((m.headers or {}).get(ORIGIN) == "province" for m in stored[2:])
    supplement, result = (msgspec.json.decode(m.data or b"{}") for m in stored[2:])
    # Dated the day before the result, in the month after April: April's report is untouched.
    asked = datetime.fromisoformat(supplement["occurred_at"])
    assert asked == datetime.fromisoformat(result["occurred_at"]) - timedelta(days=1)
    assert asked.astimezone(VN).strftime("%Y-%m") == "2021-05"


async def test_the_province_sim_command_asks_for_supplements_when_told(
    nats_server: NatsServer, harness: Harness, unit: Client, subprocess_env: dict[str, str]
) -> None:
    await harness.forwarder()
    command = [sys.executable, "-m", "lienthong.cli", "province-sim", "--nats-url", nats_server.url]
    province = await asyncio.create_subprocess_exec(
        *command,
        "--supplement-every",
        "1",
        env=subprocess_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert province.stderr is not None
        while b"listening on" not in (
            line := await asyncio.wait_for(province.stderr.readline(), 30)
        ):
            assert line, "the province-sim command ended before listening"
        await accepted(unit, ev.WARD, lifecycle("HS-C1")[:2])

        async def answered() -> bool:
            return await log_size(unit) == 4

        await until(answered, what="the supplement request and the result")
        province.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(province.communicate(), 20)
        assert province.returncode == 0
        assert "supplements_acknowledged=1" in out.decode()
    finally:
        if province.returncode is None:
            province.kill()
            await province.wait()
    last = await unit.jetstream().get_msg(EVENTS_STREAM, 3)
    assert msgspec.json.decode(last.data or b"{}")["type"] == "dossier.supplement_requested"
