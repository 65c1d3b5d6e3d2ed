"""CONTRACT section 6 through the real pipeline: gateway, log, projector, ONESTOP_REPORTS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client

from consumers.audit.rebuild import rebuild
from consumers.reports import report_store
from consumers.reports.projector import ProjectorSettings, ReportProjector
from gateway.service import Gateway
from lienthong.demo.province_view import follow_reports
from plumbing import connection
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings
from plumbing.streams import EVENTS_STREAM, REPORTS_STREAM
from schemas.periods import VN, period_end
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import submit

FAST = ProjectorSettings(
    coalesce_seconds=0.1, checkpoint_seconds=0.5
)  # for tests that make their own


async def report(client: Client, unit: str, period: str) -> Any:
    found = await report_store.current_report(JetStream(client, 5), unit, period)
    assert found is not None, f"no report for {unit} {period}"
    return msgspec.to_builtins(found.report)


async def revisions(client: Client, unit: str, period: str) -> int:
    info = await client.jetstream().stream_info(
        REPORTS_STREAM, subjects_filter=f"onestop.reports.{unit}.{period}"
    )
    return dict(info.state.subjects or {}).get(f"onestop.reports.{unit}.{period}", 0)


async def test_a_unit_report_and_its_city_and_province_rollups_are_published(
    projector: ReportProjector, client: Client
) -> None:
    await submit(client, ev.WARD, ev.received("R-1"))
    await submit(client, ev.OTHER_WARD, ev.received("R-2", unit=ev.OTHER_WARD))
    await projector.wait_until_current()
    ward = await report(client, ev.WARD, "2021-04")
    city = await report(client, ev.CITY, "2021-04")
    province = await report(client, ev.PROVINCE, "2021-04")
    assert ward["dossiers"]["received"]["new"] == 1
    assert city["dossiers"]["received"]["new"] == 2
    assert province["dossiers"]["received"]["new"] == 2
    assert ward["final"] is True  # April 2021 has ended


async def test_a_burst_of_events_gives_one_revision_not_one_per_event(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry, client: Client
) -> None:
    batch = [ev.received(f"B-{i}") for i in range(200)]
    assert all(r["ok"] for r in await submit(client, ev.WARD, batch))
    projector_client = await connection.connect(nats_settings)
    p = ReportProjector(projector_client, registry, ProjectorSettings(coalesce_seconds=0.5))
    await p.start()
    await p.wait_until_current()
    assert await revisions(client, ev.WARD, "2021-04") == 1
    await p.stop()
    await projector_client.close()


async def test_nothing_is_published_when_the_figures_did_not_change(
    projector: ReportProjector, client: Client
) -> None:
    await submit(client, ev.WARD, ev.received("N-1"))
    await projector.wait_until_current()
    before = await revisions(client, ev.WARD, "2021-04")
    # A supplement request changes no figure of the report.
    await submit(client, ev.WARD, ev.dossier_event("supplement_requested", "N-1"))
    await projector.wait_until_current()
    await asyncio.sleep(0.3)
    assert await revisions(client, ev.WARD, "2021-04") == before


async def test_late_event_revises_its_period_and_later_carried_over_and_rollups(
    projector: ReportProjector, client: Client
) -> None:
    await submit(client, ev.WARD, ev.received("L-1", occurred_at="2021-04-05T08:00:00+07:00"))
    await submit(client, ev.WARD, ev.copy("C-JUNE", occurred_at="2021-06-03T08:00:00+07:00"))
    await projector.wait_until_current()
    for period in ("2021-05", "2021-06"):
        assert (await report(client, ev.WARD, period))["dossiers"]["received"]["carried_over"] == 1
    april_revision = (await report(client, ev.CITY, "2021-04"))["revision"]
    # Submitted in "June": the dossier was resolved on 20 April.
    resolved = ev.dossier_event("resolved", "L-1", occurred_at="2021-04-20T10:00:00+07:00")
    assert (await submit(client, ev.WARD, resolved))["ok"] is True
    await projector.wait_until_current()
    april = await report(client, ev.CITY, "2021-04")
    assert april["revision"] == april_revision + 1
    assert april["dossiers"]["resolved"]["total"] == 1
    for unit in (ev.WARD, ev.CITY, ev.PROVINCE):
        for period in ("2021-05", "2021-06"):
            later = await report(client, unit, period)
            assert later["dossiers"]["received"]["carried_over"] == 0, (unit, period)


async def test_provisional_report_of_the_running_month(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry, client: Client
) -> None:
    now = datetime.now(VN)
    due = now.replace(microsecond=0)
    event = ev.received(
        "P-1",
        occurred_at=(due.replace(day=1, hour=0, minute=0, second=1)).isoformat(),
        due_at=(due.replace(day=1, hour=0, minute=0, second=2)).isoformat(),
    )
    assert (await submit(client, ev.WARD, event))["ok"] is True
    projector_client = await connection.connect(nats_settings)
    p = ReportProjector(projector_client, registry, FAST)
    await p.start()
    await p.wait_until_current()
    current = await report(client, ev.WARD, now.strftime("%Y-%m"))
    assert current["final"] is False
    assert current["dossiers"]["in_progress"]["overdue"] == 1  # due before generated_at
    await p.stop()
    await projector_client.close()


async def test_two_rebuilds_from_the_log_give_the_projectors_figures(
    projector: ReportProjector, registry: Registry, client: Client
) -> None:
    await submit(client, ev.WARD, [ev.received("RB-1"), ev.dossier_event("resolved", "RB-1")])
    await submit(client, ev.OTHER_WARD, ev.received("RB-2", unit=ev.OTHER_WARD))
    await projector.wait_until_current()
    books = [(await rebuild(client, registry)).book for _ in range(2)]
    assert books[0].units() == projector.book.units()
    for unit in books[0].units():
        assert books[0].periods(unit) == projector.book.periods(unit)
        for period in books[0].periods(unit):
            assert books[0].figures(unit, period) == books[1].figures(unit, period)
            assert books[0].figures(unit, period) == projector.book.figures(unit, period)


async def test_a_rebuild_leaves_no_durable_consumer_and_no_checkpoint(
    gateway: Gateway, registry: Registry, client: Client
) -> None:
    """It reads the log and writes nothing: no consumer left behind, no stream or bucket (a
    checkpoint's included) one message longer."""
    await submit(client, ev.WARD, ev.received("RB-3"))
    js = client.jetstream()

    async def durables() -> set[str]:
        return {
            c.config.durable_name or ""
            for stream in (EVENTS_STREAM, REPORTS_STREAM)
            for c in await js.consumers_info(stream)
            if c.config.durable_name
        }

    async def stored_messages() -> dict[str, int]:
        return {str(info.config.name): info.state.last_seq for info in await js.streams_info()}

    before, stored = await durables(), await stored_messages()
    assert (await rebuild(client, registry)).book.periods(ev.WARD)
    assert await durables() == before
    assert await stored_messages() == stored


async def test_province_view_reads_current_reports_then_follows_revisions(
    projector: ReportProjector, client: Client
) -> None:
    await submit(client, ev.WARD, ev.received("PV-1"))
    await projector.wait_until_current()
    current: dict[tuple[str, str], dict[str, Any]] = {}
    stop = asyncio.Event()
    follower = asyncio.create_task(follow_reports(client, current, stop=stop))
    for _ in range(100):
        if (ev.CITY, "2021-04") in current:
            break
        await asyncio.sleep(0.05)
    assert current[(ev.CITY, "2021-04")]["dossiers"]["received"]["total"] == 1
    await submit(client, ev.WARD, ev.dossier_event("resolved", "PV-1"))
    await projector.wait_until_current()
    for _ in range(100):
        if current[(ev.CITY, "2021-04")]["dossiers"]["resolved"]["total"] == 1:
            break
        await asyncio.sleep(0.05)
    assert current[(ev.CITY, "2021-04")]["dossiers"]["resolved"]["total"] == 1
    stop.set()
    await follower


def test_delivery_is_read_from_both_reply_subject_forms() -> None:
    from plumbing.jetstream import Delivery, delivery_of

    expected = Delivery(seq=42, pending=3, stored_ns=1700000000000000000)
    assert delivery_of("$JS.ACK.ONESTOP_EVENTS.p.1.42.7.1700000000000000000.3") == expected
    assert (
        delivery_of("$JS.ACK.hub.ACCHASH.ONESTOP_EVENTS.p.1.42.7.1700000000000000000.3.rnd")
        == expected
    )


class Clock:
    """The projector's clock, moved by the test; the month's start is when the dossier came."""

    def __init__(self) -> None:
        self.month_start = datetime.now(VN).replace(
            day=1, hour=0, minute=0, second=1, microsecond=0
        )
        self.now = self.month_start + timedelta(days=1)
        self.period = self.month_start.strftime("%Y-%m")

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def running_month(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry, client: Client
) -> AsyncIterator[tuple[Clock, dict[str, Any]]]:
    """A dossier received this month (due in 40 days), projected with a clock the test moves;
    yields the clock and the ward's first, provisional report."""
    clock = Clock()
    event = ev.received(
        "M-1",
        occurred_at=clock.month_start.isoformat(),
        due_at=(clock.month_start + timedelta(days=40)).isoformat(),
    )
    assert (await submit(client, ev.WARD, event))["ok"] is True
    projector_client = await connection.connect(nats_settings)
    settings = ProjectorSettings(coalesce_seconds=0.1, tick_seconds=0.1)
    p = ReportProjector(projector_client, registry, settings, clock=clock)
    await p.start()
    await p.wait_until_current()
    first = await report(client, ev.WARD, clock.period)
    assert first["final"] is False
    yield clock, first
    await p.stop()
    await projector_client.close()


async def next_revision(client: Client, period: str, after: int) -> Any:
    for _ in range(100):
        current = await report(client, ev.WARD, period)
        if current["revision"] > after:
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"no revision after {after}")


async def test_provisional_reports_become_final_when_the_period_ends_without_an_event(
    running_month: tuple[Clock, dict[str, Any]], client: Client
) -> None:
    clock, before = running_month
    clock.now = period_end(clock.period) + timedelta(seconds=1)  # the month ends, no event
    current = await next_revision(client, clock.period, before["revision"])
    assert current["final"] is True
    assert current["revision"] == before["revision"] + 1
    assert current["dossiers"] == before["dossiers"]  # due in 40 days: still within deadline


async def test_provisional_reports_are_republished_at_least_daily(
    running_month: tuple[Clock, dict[str, Any]], client: Client
) -> None:
    clock, before = running_month
    clock.now += timedelta(days=1, seconds=1)  # a day later, still in the month
    current = await next_revision(client, clock.period, before["revision"])
    assert current["final"] is False
    assert current["revision"] == before["revision"] + 1


async def test_a_later_period_of_one_unit_gives_every_unit_its_reports_up_to_it(
    projector: ReportProjector, client: Client
) -> None:
    await submit(client, ev.WARD, ev.received("W-1", occurred_at="2021-04-05T08:00:00+07:00"))
    await projector.wait_until_current()
    # Another ward's June event makes June the log's latest period: the first ward's open
    # dossier is carried into May and June, so it has reports for them with no event of its own.
    june = ev.copy("C-OTHER", unit=ev.OTHER_WARD, occurred_at="2021-06-03T08:00:00+07:00")
    await submit(client, ev.OTHER_WARD, june)
    await projector.wait_until_current()
    for period in ("2021-05", "2021-06"):
        later = await report(client, ev.WARD, period)
        assert later["dossiers"]["received"]["carried_over"] == 1, period
        assert later["dossiers"]["in_progress"]["total"] == 1, period
