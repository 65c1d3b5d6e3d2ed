"""Issue 13: ward sites that keep working offline, caught up in order and once.

Real nats-servers on loopback: the city's (accepting leaf nodes) and two ward sites, each a leaf
node of the city's with its own JetStream domain (`site-<code>`), configured as `lienthong site
init` writes them. A site's link is cut by restarting its server with its leaf remote pointing
at a port nobody listens on (so the site restarts while cut, and the other site keeps its link).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from consumers.audit.rebuild import rebuild
from consumers.interconnect.forwarder import Forwarder
from consumers.interconnect.settings import ForwarderSettings, OutboxSettings
from consumers.reports.projector import ReportProjector
from consumers.reports.report_rules import ReportBook
from consumers.reports.report_store import current_report
from consumers.sites.status import SiteLag, site_lags
from gateway.service import Gateway
from gateway.site_catchup import SiteCatchUp
from gateway.site_move import Copied, seed_site
from lienthong.demo.province_sim import ProvinceSettings, ProvinceSimulator
from lienthong.embedded import NatsServer
from plumbing import connection
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.sites import Checkpoint, SiteServer, mirror_name, site_domain, sites_bucket
from plumbing.streams import EVENTS_STREAM
from schemas.codec import EVENT_DECODER
from schemas.registry import Registry, RegistryFile
from tests import events as ev
from tests.helpers import (
    FAST_PROJECTOR,
    SHORT_WINDOW,
    answering,
    connected,
    error_of,
    free_port,
    jetstream_remembers,
    log_subjects,
    submit,
    until,
)

SITE_A = ev.WARD  # 21550
SITE_B = ev.OTHER_WARD  # 21553
CATCH_UP = 150.0
"""Bound on a mirror resuming after the link returned: nats-server retries a mirror's consumer
with a backoff of 10 s per failure, capped at 2 minutes, and checks its health every 10 s."""


def site_registry() -> Registry:
    units = [
        msgspec.structs.replace(u, site=True) if u.code in (SITE_A, SITE_B) else u
        for u in (Registry.load()[c] for c in Registry.load().codes())
    ]
    return Registry(units)


def registry_json(registry: Registry) -> bytes:
    return msgspec.json.encode(RegistryFile(units=[registry[c] for c in registry.codes()]))


class Site:
    """A site's nats-server: linked to the city's leaf port, or cut off (a dead port)."""

    def __init__(self, store: Path, code: str, leaf_port: int) -> None:
        self.store = store
        self.code = code
        self.leaf_port = leaf_port
        self.port = free_port()
        self.server = self._server(leaf_port)

    def _server(self, leaf_port: int) -> NatsServer:
        config = SiteServer(
            code=self.code,
            city_leaf_urls=(f"nats-leaf://127.0.0.1:{leaf_port}",),
            leaf_reconnect_seconds=1,
        )
        return NatsServer(
            self.store,
            port=self.port,
            name=f"site-{self.code}",
            domain=site_domain(self.code),
            extra_config=config.leaf_block(),
        )

    @property
    def url(self) -> str:
        return self.server.url

    def restart(self, *, linked: bool, kill: bool = False) -> None:
        self.server.kill() if kill else self.server.stop()
        self.server = self._server(self.leaf_port if linked else free_port())
        self.server.start()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[NatsServer, Site, Site]]:
    leaf = free_port()
    city = NatsServer(
        tmp_path / "city",
        port=free_port(),
        name="city",
        extra_config=f"leafnodes {{ listen: 127.0.0.1:{leaf} }}\n",
    )
    a, b = Site(tmp_path / "a", SITE_A, leaf), Site(tmp_path / "b", SITE_B, leaf)
    city.start()
    try:
        a.server.start()
        b.server.start()
        yield city, a, b
    finally:
        for server in (a.server, b.server, city):
            server.stop()


async def log_of(client: Client, unit: str) -> list[tuple[str, bytes]]:
    """(subject, bytes) of a unit's events in a log, in log order."""
    js = client.jetstream()
    total = (await js.stream_info(EVENTS_STREAM)).state.messages
    sub = await js.subscribe(
        f"onestop.events.{unit}.>",
        stream=EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    out: list[tuple[str, bytes]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                break
            out.append((msg.subject, msg.data))
            if len(out) >= total:
                break
    finally:
        await sub.unsubscribe()
    return out


def per_subject(log: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    by: dict[str, list[bytes]] = {}
    for subject, data in log:
        by.setdefault(subject, []).append(data)
    return by


@pytest.fixture
async def running(
    world: tuple[NatsServer, Site, Site],
) -> AsyncIterator[dict[str, Any]]:
    city, a, b = world
    registry = site_registry()
    fast = NatsSettings(request_timeout=2.0)
    short = StreamSettings(duplicate_window_seconds=SHORT_WINDOW)
    city_gw = Gateway(msgspec.structs.replace(fast, servers=(city.url,)), short, registry)
    site_a = Gateway(msgspec.structs.replace(fast, servers=(a.url,)), short, registry, site=SITE_A)
    site_b = Gateway(msgspec.structs.replace(fast, servers=(b.url,)), short, registry, site=SITE_B)
    for g in (city_gw, site_a, site_b):
        await g.start()
    catch_client = await connection.connect(NatsSettings(servers=(city.url,)))
    catchup = SiteCatchUp(catch_client, registry)
    await catchup.start()
    projector_client = await connection.connect(NatsSettings(servers=(city.url,)))
    projector = ReportProjector(projector_client, registry, FAST_PROJECTOR)
    await projector.start()
    yield {"registry": registry, "catchup": catchup, "client": catch_client}
    await projector.stop()
    await catchup.stop()
    for g in (site_a, site_b, city_gw):
        await g.stop()
    await projector_client.close()
    await catch_client.close()


async def has_all(city: Client, site: Client, unit: str) -> bool:
    return len(await log_of(city, unit)) == len(await log_of(site, unit))


@pytest.mark.timeout(600)
async def test_a_cut_off_site_keeps_the_contract_and_the_city_catches_up_once_in_order(
    world: tuple[NatsServer, Site, Site], running: dict[str, Any], tmp_path: Path
) -> None:
    city, a, b = world
    registry: Registry = running["registry"]
    registry_file = tmp_path / "units.json"
    registry_file.write_bytes(registry_json(registry))
    async with connected(city.url) as c, connected(a.url) as sa, connected(b.url) as sb:
        first = ev.received("HS-A-1")
        assert (await submit(sa, SITE_A, first))["ok"]
        assert (await submit(sb, SITE_B, ev.received("HS-B-1", unit=SITE_B)))["ok"]
        await until(lambda: has_all(c, sa, SITE_A), CATCH_UP, "site A's first event at the city")
        # While linked, the city relays a submission for a site's unit to the site.
        relayed = ev.received("HS-A-2")
        assert (await submit(c, SITE_A, relayed))["ok"]
        # Stored at the site, it reaches the city's log by the mirror: wait for it there.
        await until(lambda: has_all(c, sa, SITE_A), CATCH_UP, "the relayed event at the city")

    a.restart(linked=False)  # cut off, and the site restarted
    await until(lambda: answering(a.url, SITE_A), 30, "site A's gateway back")
    async with connected(city.url) as c, connected(a.url) as sa, connected(b.url) as sb:
        # The city never writes the site's entities: it cannot reach the site, so it refuses.
        cut = await submit(c, SITE_A, ev.received("HS-A-never"))
        assert error_of(cut) == ("unavailable", None)
        # The site keeps the contract: new dossiers, a resend, a conflict, a late event.
        d3 = ev.received("HS-A-3")
        late = ev.received(
            "HS-A-late", occurred_at="2021-03-30T09:00:00+07:00", due_at="2021-04-06T17:00:00+07:00"
        )
        replies = await submit(sa, SITE_A, [d3, late, ev.dossier_event("resolved", "HS-A-3")])
        assert all(r["ok"] for r in replies), replies
        again = await submit(sa, SITE_A, ev.dossier_event("resolved", "HS-A-3"))
        assert error_of(again)[0] == "conflict"
        # Longer than the duplicate window, a resend is still a duplicate with its sequence.
        seq = replies[0]["seq"]
        await until(lambda: _forgotten(sa, SITE_A, d3["event_id"]), 30, "the window to pass")
        resent = await submit(sa, SITE_A, d3)
        assert resent == {"ok": True, "seq": seq, "duplicate": True, "event_id": d3["event_id"]}
        resent_first = await submit(sa, SITE_A, first)
        assert resent_first["duplicate"] is True
        # The other site never lost its link: its events reach the city meanwhile.
        assert (await submit(sb, SITE_B, ev.received("HS-B-2", unit=SITE_B)))["ok"]
        await until(lambda: has_all(c, sb, SITE_B), CATCH_UP, "site B, never held up")
        assert len(await log_of(c, SITE_A)) == 2  # nothing of the cut-off site's new events
        # Visible lag: the status says which site is cut off, the reports that count it say
        # their figures may still be revised, those of the linked site do not.
        await until(lambda: caught_up(c, registry, SITE_B), CATCH_UP, "site B's checkpoint")
        lags = {lag.site: lag for lag in await site_lags(c, registry)}
        assert lags[SITE_A].link == "down"
        assert not lags[SITE_A].caught_up
        assert lags[SITE_B].caught_up
        status = await asyncio.to_thread(run_status, city.url, registry_file)
        assert re.search(rf"^{SITE_A} .* down ", status, re.MULTILINE), status
        assert re.search(rf"^{SITE_B} .* up +0 ", status, re.MULTILINE), status
        js = JetStream(c, 5.0)
        for unit, pending in ((SITE_A, [SITE_A]), (ev.CITY, [SITE_A]), (SITE_B, None)):
            await until(
                partial(pending_in, js, unit, "2021-04", pending),
                CATCH_UP,
                f"{unit}'s report pending on {pending}",
            )
        shown = await asyncio.to_thread(
            run_cli, "report", "--unit", ev.CITY, "--period", "2021-04", "--nats-url", city.url
        )
        assert f"may still be revised: site {SITE_A} not caught up" in shown

    city.stop()  # the city restarts during the outage
    city.start()
    await until(lambda: answering(a.url, SITE_A), 30, "site A's gateway")
    async with connected(a.url) as sa:
        assert (await submit(sa, SITE_A, ev.dossier_event("result_returned", "HS-A-3")))["ok"]
    a.restart(linked=True)  # the link returns ...
    a.restart(linked=True, kill=True)  # ... and the site's server is killed as it does
    await until(lambda: answering(a.url, SITE_A), 30, "site A's gateway back")
    async with connected(city.url) as c, connected(a.url) as sa:
        await until(lambda: has_all(c, sa, SITE_A), CATCH_UP, "site A caught up at the city")
        city_log, site_log = await log_of(c, SITE_A), await log_of(sa, SITE_A)
        # Each event once, each dossier's events in the site's order.
        assert sorted(city_log) == sorted(site_log)
        assert len(set(city_log)) == len(city_log)
        assert per_subject(city_log) == per_subject(site_log)
        # The city's projector counts them as the same events with no outage would be counted,
        # a closed month (March) revised by the late event.
        site_book = (await rebuild(sa, registry)).book
        js = JetStream(c, 5.0)
        for period in ("2021-03", "2021-04"):
            expected = site_book.figures(SITE_A, period)

            async def counted(period: str = period, expected: Any = expected) -> bool:
                found = await current_report(js, SITE_A, period)
                return found is not None and found.report.figures == expected

            await until(counted, CATCH_UP, f"the city's {period} report of site A")
        info = await c.jetstream().stream_info(mirror_name(SITE_A))
        assert info.state.messages == len(site_log)
        for unit in (SITE_A, ev.CITY):
            await until(
                partial(pending_in, js, unit, "2021-04", None),
                CATCH_UP,
                f"{unit}'s report no longer pending",
            )
        await until(lambda: caught_up(c, registry, SITE_A), CATCH_UP, "site A's checkpoint")
        lags = {lag.site: lag for lag in await site_lags(c, registry)}
        assert lags[SITE_A] == SiteLag(site=SITE_A, link="up", held=0, since=None)
        # The city's roll-up equals that of the two sites' events with no outage at all.
        async with connected(b.url) as sb:
            both = ReportBook()
            for subject, data in [*site_log, *await log_of(sb, SITE_B)]:
                unit = subject.split(".")[2]
                both.apply(EVENT_DECODER.decode(data), registry.report_units(unit))
        for period in ("2021-03", "2021-04"):
            found = await current_report(js, ev.CITY, period)
            assert found is not None
            assert found.report.figures == both.figures(ev.CITY, period)
        # A catch-up that lost its checkpoint (killed between append and checkpoint) reads the
        # whole mirror again, long after the duplicate window: nothing is appended twice.
        catchup: SiteCatchUp = running["catchup"]
        await catchup.abort()
        kv = await sites_bucket(c)
        await kv.put(SITE_A, msgspec.json.encode(Checkpoint()))
        again = SiteCatchUp(running["client"], registry)
        await again.start()
        try:
            await until(
                lambda: again.checkpoints[SITE_A].mirror_seq == len(site_log),
                CATCH_UP,
                "the catch-up through the mirror again",
            )
        finally:
            await again.stop()
        assert await log_of(c, SITE_A) == city_log


async def caught_up(client: Client, registry: Registry, site: str) -> bool:
    lags = {lag.site: lag for lag in await site_lags(client, registry)}
    return lags[site].caught_up


async def pending_in(js: JetStream, unit: str, period: str, pending: list[str] | None) -> bool:
    found = await current_report(js, unit, period)
    return found is not None and found.report.pending_sites == pending


def run_cli(*args: str) -> str:
    """A lienthong command's output (it must succeed)."""
    command = [sys.executable, "-m", "lienthong.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def run_status(url: str, registry_file: Path) -> str:
    return run_cli("status", "--nats-url", url, "--registry", str(registry_file))


async def _forgotten(client: Client, unit: str, event_id: str) -> bool:
    subject = f"onestop.events.{unit}.dossier.probe"
    return not await jetstream_remembers(client, unit, event_id, subject)


FAST_FORWARDER = ForwarderSettings(
    ack_wait=2.0,
    outbox=OutboxSettings(ack_wait=2.0),
    first_delay=0.02,
    max_delay=0.25,
    request_timeout=0.5,
    parked_poll=0.1,
    record_every=0.2,
)


@pytest.mark.timeout(600)
async def test_a_cut_off_sites_interconnection_waits_then_goes_out_in_order(
    world: tuple[NatsServer, Site, Site], running: dict[str, Any]
) -> None:
    city, a, _ = world
    registry: Registry = running["registry"]
    forwarder_client = await connection.connect(NatsSettings(servers=(city.url,)))
    forwarder = Forwarder(forwarder_client, registry, FAST_FORWARDER)
    await forwarder.start()
    province_client = await connection.connect(NatsSettings(servers=(city.url,)))
    province = ProvinceSimulator(
        province_client, ProvinceSettings(request_timeout=2.0, retry_delay=0.05)
    )
    await province.start()
    try:
        a.restart(linked=False)
        await until(lambda: answering(a.url, SITE_A), 30, "site A's gateway back")
        dossier = "HS-T-1"
        events = [
            ev.received(dossier),
            ev.dossier_event("transferred", dossier, interconnect=True),
            ev.dossier_event("deadline_changed", dossier),
        ]
        async with connected(a.url) as sa, connected(city.url) as c:
            assert all(r["ok"] for r in await submit(sa, SITE_A, events))
            # The province's message for the cut-off site's dossier waits: nothing stored.
            receipt = {
                "message_id": "P-receipt-1",
                "kind": "receipt",
                "unit": SITE_A,
                "dossier_id": dossier,
                "sent_at": "2021-04-06T09:00:00+07:00",
                "body": {},
            }
            reply = await c.request(
                f"onestop.inbound.{SITE_A}", msgspec.json.encode(receipt), timeout=40
            )
            assert error_of(msgspec.json.decode(reply.data)) == ("unavailable", None)
        a.restart(linked=True)
        await until(lambda: answering(a.url, SITE_A), 30, "site A's gateway back")
        owed = [f"{SITE_A}:{e['event_id']}" for e in events[1:]]
        await until(
            lambda: province.order(SITE_A, dossier) == owed,
            CATCH_UP,
            "the transfer and its status at the province, in order",
        )
        async with connected(a.url) as sa, connected(city.url) as c:
            reply = await c.request(
                f"onestop.inbound.{SITE_A}", msgspec.json.encode(receipt), timeout=40
            )
            assert msgspec.json.decode(reply.data) == {"ok": True}
            # The province's result reached the site's log (its one writer), then the city's.
            resolved = f"onestop.events.{SITE_A}.dossier.{dossier}"

            async def resolved_at(client: Client) -> bool:
                log = await log_of(client, SITE_A)
                return any(s == resolved and b'"dossier.resolved"' in d for s, d in log)

            await until(lambda: resolved_at(sa), CATCH_UP, "the province's result at the site")
            await until(lambda: has_all(c, sa, SITE_A), CATCH_UP, "the result at the city")
            assert await resolved_at(c)
    finally:
        await province.stop()
        await forwarder.stop()
        await province_client.close()
        await forwarder_client.close()


@pytest.mark.timeout(600)
async def test_a_ward_moves_to_its_site_and_back_without_losing_or_doubling_its_history(
    world: tuple[NatsServer, Site, Site],
) -> None:
    city, a, _ = world
    central, sited = Registry.load(), site_registry()
    city_nats = NatsSettings(servers=(city.url,), request_timeout=2.0)
    site_nats = NatsSettings(servers=(a.url,), request_timeout=2.0)
    old = [ev.received("HS-M-1"), ev.received("HS-M-2")]
    # Served by the city today.
    city_gw = Gateway(city_nats, StreamSettings(), central)
    await city_gw.start()
    async with connected(city.url) as c:
        assert all(r["ok"] for r in await submit(c, SITE_A, old))
    await city_gw.stop()
    # To its site: the city's gateway no longer writes it; its history is copied to the site.
    city_gw = Gateway(city_nats, StreamSettings(), sited)
    await city_gw.start()
    async with connected(city.url) as from_city, connected(a.url) as to_site:
        copied = await seed_site(from_city, to_site, sited, SITE_A, StreamSettings(), 2.0)
        assert copied == Copied(stored=2, duplicates=0, refused=0)
        again = await seed_site(from_city, to_site, sited, SITE_A, StreamSettings(), 2.0)
        assert again == Copied(stored=0, duplicates=2, refused=0)  # harmless twice
    site_gw = Gateway(site_nats, StreamSettings(), sited, site=SITE_A)
    await site_gw.start()
    catch_client = await connection.connect(city_nats)
    catchup = SiteCatchUp(catch_client, sited)
    await catchup.start()
    resolved = ev.dossier_event("resolved", "HS-M-1")
    try:
        async with connected(a.url) as sa, connected(city.url) as c:
            resent = await submit(sa, SITE_A, old[0])  # the ward goes on where it was
            assert resent["duplicate"] is True
            assert (await submit(sa, SITE_A, resolved))["ok"] is True
            await until(lambda: has_all(c, sa, SITE_A), CATCH_UP, "the site's events at the city")
            city_log = await log_of(c, SITE_A)
            assert len(city_log) == 3
            assert len(set(city_log)) == 3
            assert catchup.checkpoints[SITE_A].refused == 0
    finally:
        await site_gw.stop()
        await catchup.stop()
        await catch_client.close()
        await city_gw.stop()
    # And back: once the city has caught up, the city's gateway writes the ward again, with
    # every event_id the site took.
    city_gw = Gateway(city_nats, StreamSettings(), central)
    await city_gw.start()
    try:
        async with connected(city.url) as c:
            back = await submit(c, SITE_A, resolved)
            assert back["duplicate"] is True
            closing = ev.dossier_event("result_returned", "HS-M-1")
            assert (await submit(c, SITE_A, closing))["ok"] is True
            assert len(await log_of(c, SITE_A)) == 4
    finally:
        await city_gw.stop()


async def test_the_city_never_takes_from_a_site_what_another_writer_owns(
    world: tuple[NatsServer, Site, Site], running: dict[str, Any]
) -> None:
    """One writer per unit: an event for the city's own unit (or another site's) that appears in
    a site's log, written around its gateway, is refused by the city's catch-up."""
    city, a, _ = world
    catchup: SiteCatchUp = running["catchup"]
    foreign = ev.received("HS-FOREIGN", unit=ev.CITY)
    async with connected(a.url) as sa, connected(city.url) as c:
        subject = f"onestop.events.{foreign['unit']}.dossier.HS-FOREIGN"
        await sa.jetstream().publish(subject, msgspec.json.encode(foreign))
        mine = ev.received("HS-A-OWN")
        assert (await submit(sa, SITE_A, mine))["ok"]
        await until(lambda: catchup.checkpoints[SITE_A].mirror_seq == 2, CATCH_UP, "both read")
        assert catchup.checkpoints[SITE_A].refused == 1
        assert subject not in await log_subjects(c)
        assert len(await log_of(c, SITE_A)) == 1
