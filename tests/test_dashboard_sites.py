"""Issue 14: the ward sites whose logs the city has not caught up with, on the dashboard's page
(interconnection health) and in /metrics, against real nats-servers: the city's, and a ward
site as a leaf node of it with its own JetStream domain (as tests/test_sites.py sets them up),
its link cut by restarting its server with its leaf remote pointing at a dead port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client
from playwright.async_api import Page, expect

from consumers.sites.status import site_lags
from dashboard.server import Dashboard
from gateway.service import Gateway
from gateway.site_catchup import SiteCatchUp
from lienthong.embedded import NatsServer
from plumbing import connection
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.sites import mirror_name
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import (
    answering,
    chromium,
    connected,
    dashboard_on,
    free_port,
    http_get,
    submit,
    until,
)
from tests.test_dashboard import samples
from tests.test_sites import CATCH_UP, SITE_A, Site, caught_up


class Row(msgspec.Struct):
    site: str
    link: str
    behind: int
    at_least: bool
    caught_up: bool


class Summary(msgspec.Struct):
    state: str
    text: str


class Panel(msgspec.Struct):
    sites: list[Row]
    sites_summary: Summary


async def panel(board: Dashboard) -> Panel:
    got = await http_get(f"{board.url}/api/interconnection")
    assert got.status == 200, got.body
    return msgspec.json.decode(got.body, type=Panel)


async def site_metrics(board: Dashboard) -> dict[str, dict[str, float]]:
    """Each site metric's samples, by site."""
    found: dict[str, dict[str, float]] = {}
    for (name, labels), value in samples((await http_get(f"{board.url}/metrics")).body).items():
        if name.startswith("lienthong_site_"):
            found.setdefault(name, {})[dict(labels)["site"]] = value
    return found


async def sites_on_page(page: Page, url: str) -> tuple[str, list[tuple[str, str, str]]]:
    await page.goto(url)
    summary = page.locator("#sites-summary")
    await expect(summary).not_to_be_empty()
    rows: list[list[str]] = await page.eval_on_selector_all(
        "#sites tbody tr",
        "rows => rows.map(r => [r.dataset.site, r.dataset.link, r.cells[2].textContent])",
    )
    return await summary.inner_text(), [(s, link, behind) for s, link, behind in rows]


async def test_with_no_sites_the_page_says_so_and_no_site_is_measured(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry
) -> None:
    assert registry.sites() == []
    async with dashboard_on(nats_settings, registry) as board, chromium() as browser:
        shown = await panel(board)
        assert shown.sites == []
        assert shown.sites_summary == Summary(
            state="none", text="Không có điểm phường, xã nào / no sites"
        )
        assert await site_metrics(board) == {}
        page = await browser.new_page()
        text, rows = await sites_on_page(page, f"{board.url}/")
    assert (text, rows) == ("Không có điểm phường, xã nào / no sites", [])


def one_site_registry() -> Registry:
    """Quy Nhơn's units with SITE_A on a ward site of its own."""
    base = Registry.load()
    return Registry([msgspec.structs.replace(base[c], site=c == SITE_A) for c in base.codes()])


@pytest.fixture
def city_and_site(tmp_path: Path) -> Iterator[tuple[NatsServer, Site]]:
    leaf = free_port()
    city = NatsServer(
        tmp_path / "city",
        port=free_port(),
        name="city",
        extra_config=f"leafnodes {{ listen: 127.0.0.1:{leaf} }}\n",
    )
    site = Site(tmp_path / "site", SITE_A, leaf)
    city.start()
    try:
        site.server.start()
        yield city, site
    finally:
        site.server.stop()
        city.stop()


@pytest.fixture
async def site_gateways(city_and_site: tuple[NatsServer, Site]) -> AsyncIterator[Registry]:
    city, site = city_and_site
    registry = one_site_registry()
    fast = NatsSettings(request_timeout=2.0)
    at_city = Gateway(
        msgspec.structs.replace(fast, servers=(city.url,)), StreamSettings(), registry
    )
    at_site = Gateway(
        msgspec.structs.replace(fast, servers=(site.url,)), StreamSettings(), registry, site=SITE_A
    )
    await at_city.start()
    await at_site.start()
    yield registry
    await at_site.stop()
    await at_city.stop()


async def mirrored(client: Client, count: int) -> bool:
    info = await client.jetstream().stream_info(mirror_name(SITE_A))
    return info.state.last_seq >= count


async def link_down(client: Client, registry: Registry) -> bool:
    return {lag.site: lag for lag in await site_lags(client, registry)}[SITE_A].link == "down"


@pytest.mark.timeout(400)
async def test_a_site_cut_off_with_events_the_city_has_not_taken_shows_as_behind(
    city_and_site: tuple[NatsServer, Site], site_gateways: Registry
) -> None:
    city, site = city_and_site
    registry = site_gateways
    settings = NatsSettings(servers=(city.url,))
    catch_client = await connection.connect(settings)
    catchup = SiteCatchUp(catch_client, registry)
    await catchup.start()
    try:
        async with connected(site.url) as at_site, connected(city.url) as c:
            assert (await submit(at_site, SITE_A, ev.received("HS-S-1")))["ok"]
            await until(lambda: caught_up(c, registry, SITE_A), CATCH_UP, "the site caught up")
    finally:
        await catchup.stop()
        await catch_client.close()

    async with dashboard_on(settings, registry) as board, chromium() as browser:
        page = await browser.new_page()
        shown = await panel(board)
        assert shown.sites == [Row(SITE_A, "up", 0, False, True)]
        assert shown.sites_summary == Summary(state="caught_up", text=(
            "Tất cả đã cập nhật / all caught up"
        ))  # fmt: skip
        assert await site_metrics(board) == {
            "lienthong_site_events_behind": {SITE_A: 0},
            "lienthong_site_behind_seconds": {SITE_A: 0},
            "lienthong_site_link_up": {SITE_A: 1},
        }
        text, rows = await sites_on_page(page, f"{board.url}/")
        assert (text, rows) == ("Tất cả đã cập nhật / all caught up", [(SITE_A, "up", "0")])

        # An event the city mirrors but does not take in (no catch-up runs), then the cut.
        async with connected(site.url) as at_site, connected(city.url) as c:
            assert (await submit(at_site, SITE_A, ev.received("HS-S-2")))["ok"]
            await until(lambda: mirrored(c, 2), CATCH_UP, "the second event in the mirror")
            site.restart(linked=False)
            await until(lambda: answering(site.url, SITE_A), 30, "the site's gateway back")
            await until(lambda: link_down(c, registry), 60, "the city to see the link down")

        shown = await panel(board)
        assert shown.sites == [Row(SITE_A, "down", 1, True, False)]
        assert shown.sites_summary == Summary(state="behind", text=(
            "1 điểm chưa cập nhật / 1 site behind"
        ))  # fmt: skip
        measured = await site_metrics(board)
        assert measured["lienthong_site_events_behind"] == {SITE_A: 1}
        assert measured["lienthong_site_link_up"] == {SITE_A: 0}
        assert measured["lienthong_site_behind_seconds"][SITE_A] > 0
        text, rows = await sites_on_page(page, f"{board.url}/")
        assert (text, rows) == ("1 điểm chưa cập nhật / 1 site behind", [(SITE_A, "down", "≥1")])
