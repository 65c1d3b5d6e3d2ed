"""The dashboard in a real browser (Debian's chromium under Playwright) against a real gateway
and projector: the report on the page equals the published one figure for figure, a revision
published while the page is open appears without a reload, the trend chart has a point per
month, the downloads from the page hold the report, and no applicant's name reaches the page."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from openpyxl import load_workbook
from playwright.async_api import Page, expect

from consumers.reports import report_store
from consumers.reports.projector import ReportProjector
from consumers.reports.report_format import rows, vn_number
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings
from schemas.registry import Registry
from schemas.report import Report
from tests import events as ev
from tests.helpers import chromium, dashboard_on, submit

APPLICANT = {"name": "Lê Văn Không Được Lộ", "id_number": "052099001122"}
APRIL = "2021-04"


def month(dossier: str, unit: str, day: date) -> list[dict[str, Any]]:
    """A dossier received on `day`, due a week later, resolved in two days; the applicant named."""
    return [
        ev.received(
            dossier,
            unit=unit,
            occurred_at=f"{day}T08:00:00+07:00",
            due_at=f"{day + timedelta(days=7)}T17:00:00+07:00",
            applicant=APPLICANT,
        ),
        ev.dossier_event(
            "resolved",
            dossier,
            unit=unit,
            occurred_at=f"{day + timedelta(days=2)}T10:00:00+07:00",
        ),
    ]


@pytest.fixture
async def published(projector: ReportProjector, client: Client) -> ReportProjector:
    """March and April 2021 of two wards through the gateway, every report published."""
    days = [date(2021, 3, 3), date(2021, 3, 10), date(2021, 4, 5), date(2021, 4, 12)]
    for n, day in enumerate(days):
        await submit(client, ev.WARD, month(f"B-{n}", ev.WARD, day))
        await submit(client, ev.OTHER_WARD, month(f"C-{n}", ev.OTHER_WARD, day))
    await submit(client, ev.WARD, ev.received("B-open", applicant=APPLICANT))  # still in progress
    await projector.wait_until_current()
    return projector


async def current(client: Client, unit: str, period: str = APRIL) -> report_store.Published:
    found = await report_store.current_report(JetStream(client, 5.0), unit, period)
    assert found is not None
    return found


async def figures_on(page: Page) -> list[tuple[str, str, str]]:
    cells: list[list[str]] = await page.eval_on_selector_all(
        "#figures tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => c.childNodes[0].textContent.trim()))",
    )
    return [(vi, en, text) for vi, en, text in cells]


def expected(report: Report) -> list[tuple[str, str, str]]:
    return [(vi.strip(), en.strip(), vn_number(v, kind)) for vi, en, v, kind in rows(report)]


async def opened(page: Page, url: str) -> None:
    """Load the page until it has drawn everything; no script error or refused load on the way
    (the page's content security policy refuses anything not from the dashboard itself)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-loaded", "true")
    assert errors == []


async def test_the_page_shows_the_published_report_and_a_new_revision_without_a_reload(
    published: ReportProjector, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    city = await current(client, ev.CITY)
    async with dashboard_on(nats_settings, registry) as board, chromium() as browser:
        page = await browser.new_page()
        await opened(page, f"{board.url}/?unit={ev.CITY}&period={APRIL}")
        assert (
            await page.locator("#title").inner_text()
            == "Báo cáo tháng 04/2021 — Thành phố Quy Nhơn"
        )
        assert await figures_on(page) == expected(city.report)
        wards = await page.eval_on_selector_all(
            "#children tbody tr", "rs => rs.map(r => r.dataset.unit)"
        )
        assert sorted(wards) == sorted([ev.WARD, ev.OTHER_WARD])

        # A revision as the projector would publish one after a late event: the open page shows
        # it within 2 seconds, formatted as the province writes it, and was never reloaded.
        await page.evaluate("window.sameDocument = true")
        d = city.report.dossiers
        revised = msgspec.structs.replace(
            city.report,
            revision=city.report.revision + 1,
            dossiers=msgspec.structs.replace(
                d,
                received=msgspec.structs.replace(d.received, total=5618),
                resolved=msgspec.structs.replace(d.resolved, on_time_rate=0.9912),
            ),
        )
        await report_store.publish(JetStream(client, 5.0), revised, city.seq)
        total = page.locator('#figures tr[data-figure="Dossiers received, total"] td.num')
        await expect(total).to_have_text("5.618", timeout=2000)
        rate = page.locator('#figures tr[data-figure="on-time rate"] td.num')
        await expect(rate).to_have_text("99,12%", timeout=2000)
        assert await page.evaluate("window.sameDocument") is True
        assert await figures_on(page) == expected(revised)
        history = page.locator("#revisions tbody tr").first
        await expect(history).to_contain_text(f"{revised.revision}")
        await expect(history).to_contain_text("5.618")


async def test_the_trend_chart_has_a_point_per_month(
    published: ReportProjector, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    periods = sorted(p for (u, p) in await report_store.current_reports(client) if u == ev.CITY)
    assert periods[:2] == ["2021-03", APRIL]
    async with dashboard_on(nats_settings, registry) as board, chromium() as browser:
        page = await browser.new_page()
        await opened(page, f"{board.url}/?unit={ev.CITY}&period={APRIL}")
        chart = await page.evaluate(
            "(() => { const c = Chart.getChart('trend-counts');"
            " return {labels: c.data.labels, points: c.data.datasets.map(d => d.data.length),"
            " received: c.data.datasets[0].data}; })()"
        )
    assert chart["labels"] == [f"{p[5:]}/{p[:4]}" for p in periods]
    assert set(chart["points"]) == {len(periods)}
    reports = [(await current(client, ev.CITY, p)).report for p in periods]
    assert chart["received"] == [r.dossiers.received.total for r in reports]


async def test_the_downloads_from_the_page_equal_the_report_and_no_name_reaches_the_page(
    published: ReportProjector,
    client: Client,
    nats_settings: NatsSettings,
    registry: Registry,
    tmp_path: Path,
) -> None:
    ward = (await current(client, ev.WARD)).report
    values = [v for _, _, v, _ in rows(ward)]
    bodies: list[bytes] = []
    async with dashboard_on(nats_settings, registry) as board, chromium() as browser:
        page = await browser.new_page(accept_downloads=True)

        async def keep(response: Any) -> None:
            if response.request.resource_type in ("document", "fetch", "xhr"):
                bodies.append(await response.body())

        page.on("response", keep)
        await opened(page, f"{board.url}/?unit={ev.WARD}&period={APRIL}")
        async with page.expect_download() as csv_download:
            await page.click("#csv")
        async with page.expect_download() as xlsx_download:
            await page.click("#xlsx")
        csv_path = tmp_path / "report.csv"
        xlsx_path = tmp_path / "report.xlsx"
        await (await csv_download.value).save_as(csv_path)
        await (await xlsx_download.value).save_as(xlsx_path)
        html = await page.content()
    lines = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    assert lines[0] == ["Báo cáo tháng 04/2021 — Phường Nhơn Bình"]
    assert [float(r[2]) if r[2] else None for r in lines[3:]] == values
    sheet = load_workbook(xlsx_path).active
    assert sheet is not None
    assert [r[2] for r in sheet.iter_rows(min_row=4, values_only=True)] == values

    assert bodies, "the page fetched nothing"
    for text in [html, *(b.decode("utf-8", "replace") for b in bodies)]:
        for secret in APPLICANT.values():
            assert secret not in text


async def test_the_page_fits_a_phone_and_prints_without_its_controls(
    published: ReportProjector, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    city = await current(client, ev.CITY)
    async with dashboard_on(nats_settings, registry) as board, chromium() as browser:
        phone = await browser.new_page(viewport={"width": 390, "height": 844})
        await opened(phone, f"{board.url}/?unit={ev.CITY}&period={APRIL}")
        assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
        await expect(phone.locator("#figures th.en-col")).to_be_hidden()
        under = phone.locator('#figures tr[data-figure="Dossiers received, total"] .en-under')
        await expect(under).to_be_visible()
        await expect(under).to_have_text("Dossiers received, total")

        printed = await browser.new_page()
        await opened(printed, f"{board.url}/?unit={ev.CITY}&period={APRIL}")
        await printed.emulate_media(media="print")
        await expect(printed.locator("#choose")).to_be_hidden()
        await expect(printed.locator("#figures")).to_be_visible()
        assert await figures_on(printed) == expected(city.report)
        assert (await printed.pdf())[:5] == b"%PDF-"
