"""CONTRACT section 7 (the part built so far): rebuilding reports from the log alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client

from consumers import report_store
from consumers.projector import ReportProjector
from consumers.rebuild import compare, rebuild
from gateway.history import dossier_history, render
from gateway.registry import Registry
from gateway.service import Gateway
from gateway.streams import EVENTS_STREAM, REPORTS_STREAM
from gateway.subjects import inbound_subject
from tests import events as ev
from tests.helpers import submit


async def stream_sizes(client: Client) -> tuple[int, int]:
    js = client.jetstream()
    events = (await js.stream_info(EVENTS_STREAM)).state.messages
    reports = (await js.stream_info(REPORTS_STREAM)).state.messages
    return events, reports


async def test_rebuild_equals_what_was_published_and_changes_nothing(
    projector: ReportProjector,
    client: Client,
    registry: Registry,
) -> None:
    await submit(client, ev.WARD, [ev.received("A-1"), ev.dossier_event("resolved", "A-1")])
    await submit(client, ev.OTHER_WARD, ev.received("A-2", unit=ev.OTHER_WARD))
    await projector.wait_until_current()
    before = await stream_sizes(client)
    book = await rebuild(client, registry)
    published = await report_store.current_reports(client)
    assert compare(book, published, datetime.now(UTC)) == []
    assert await stream_sizes(client) == before


async def test_rebuild_finds_a_published_report_that_differs(
    projector: ReportProjector,
    client: Client,
    registry: Registry,
) -> None:
    await submit(client, ev.WARD, ev.received("A-3"))
    await projector.wait_until_current()
    book = await rebuild(client, registry)
    published = await report_store.current_reports(client)
    # An empty book stands for a log that lost its events: every published report differs.
    assert compare(type(book)(), published, datetime.now(UTC)) != []


async def test_rebuild_as_of_a_moment_sees_only_events_stored_by_then(
    projector: ReportProjector,
    client: Client,
    registry: Registry,
) -> None:
    await submit(client, ev.WARD, ev.received("A-4"))
    await asyncio.sleep(0.05)
    moment = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await submit(client, ev.WARD, ev.dossier_event("resolved", "A-4"))
    then = await rebuild(client, registry, stored_by=moment)
    now = await rebuild(client, registry)
    assert then.figures(ev.WARD, "2021-04").dossiers.resolved.total == 0
    assert then.figures(ev.WARD, "2021-04").dossiers.in_progress.total == 1
    assert now.figures(ev.WARD, "2021-04").dossiers.resolved.total == 1


async def test_dossier_history_shows_events_and_province_records_without_personal_data(
    gateway: Gateway, client: Client
) -> None:
    applicant = {"name": "Nguyễn Văn Bí Mật", "id_number": "052090009999"}
    await submit(client, ev.WARD, ev.received("H-1", applicant=applicant))
    await submit(client, ev.WARD, ev.dossier_event("deadline_changed", "H-1"))
    receipt = {
        "message_id": "52-receipt-h1",
        "kind": "receipt",
        "unit": ev.WARD,
        "dossier_id": "H-1",
        "sent_at": "2021-04-09T09:00:00+07:00",
        "body": {"note": "đã tiếp nhận"},
    }
    await client.request(inbound_subject(ev.WARD), msgspec.json.encode(receipt), timeout=5)
    lines = await dossier_history(client, ev.WARD, "H-1")
    assert [line.what for line in lines] == [
        "dossier.received",
        "dossier.deadline_changed",
        "receipt",
    ]
    assert lines[2].source == "from province"
    text = render(lines)
    assert "Bí Mật" not in text
    assert "052090009999" not in text
    assert "personal data, not shown" in text
