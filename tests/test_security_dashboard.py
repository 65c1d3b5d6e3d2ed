"""Issue 14 under issue 10's parties: the dashboard reads with a read-only party of its own,
against a real nats-server started from what `lienthong security init` wrote. It serves every
page and endpoint with that party alone, and the server refuses it anything that changes
something or reads what it does not show (the dossier keys, the erasures, the disclosures)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import structlog

from gateway.service import Gateway
from lienthong.demo.province_sim import ProvinceSettings, ProvinceSimulator
from lienthong.node import Node
from lienthong.parties import Role, load_parties
from lienthong.security import Layout, init
from plumbing import connection
from plumbing.settings import StreamSettings
from plumbing.streams import (
    DISCLOSURES_STREAM,
    ERASURES_STREAM,
    EVENTS_STREAM,
    KEYS_STREAM,
    OPERATIONS_STREAM,
    REPORTS_STREAM,
)
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import (
    FAST_PROJECTOR,
    LienthongProcess,
    SecureDeployment,
    dashboard_on,
    free_port,
    http_get,
    secure_deployment,
    submit,
    until,
)

API = "$JS.API"
WARD, SITE = ev.WARD, ev.OTHER_WARD
PAGES = (
    "/",
    "/api/units",
    f"/api/report?unit={ev.CITY}&period=2021-04",
    f"/api/history?unit={WARD}&period=2021-04",
    f"/api/trend?unit={WARD}",
    f"/api/overdue?unit={ev.CITY}&period=2021-04",
    "/api/interconnection",
    f"/report.csv?unit={ev.CITY}&period=2021-04",
    f"/report.xlsx?unit={ev.CITY}&period=2021-04",
    "/metrics",
    "/readyz",
)


@pytest.fixture(autouse=True)
def _refusals_of_this_test() -> Iterator[None]:
    connection.PERMISSION_DENIED.clear()
    yield
    structlog.reset_defaults()
    connection.PERMISSION_DENIED.clear()


def with_a_site() -> Registry:
    """Quy Nhơn's units, SITE on a ward site of its own (its site not running: never heard)."""
    base = Registry.load()
    return Registry([msgspec.structs.replace(base[c], site=c == SITE) for c in base.codes()])


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[SecureDeployment]:
    with secure_deployment(tmp_path / "security", with_a_site()) as running:
        yield running


def test_security_init_writes_a_dashboard_party_that_may_change_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "security"
    init(folder, with_a_site(), Layout())
    [party] = [p for p in load_parties(folder) if p.name == "dashboard"]
    assert party.role is Role.DASHBOARD
    assert (folder / party.credentials).read_text().startswith("SU")
    assert party.permissions.subscribe == ("_INBOX_dashboard.>",)
    assert not party.permissions.allow_responses
    for subject in party.permissions.publish:  # every right a read: info, get, ephemeral consumer
        assert subject.startswith(("$JS.API.", "$JS.FC.", f"$JS.site-{SITE}.API.")), subject
        verb = subject.split(".")[3] if subject.startswith("$JS.site") else subject.split(".")[2]
        assert verb in ("STREAM", "DIRECT", "CONSUMER") or subject.startswith("$JS.FC."), subject
        assert not any(w in subject for w in ("DELETE", "PURGE", "UPDATE", "CREATE.>", "DURABLE"))
        assert ".STREAM.CREATE" not in subject
        for private in (KEYS_STREAM, ERASURES_STREAM, DISCLOSURES_STREAM, OPERATIONS_STREAM):
            assert private not in subject, subject


async def test_the_dashboard_serves_everything_on_its_own_party_and_nothing_is_refused(
    deployment: SecureDeployment,
) -> None:
    registry = with_a_site()
    node = Node(deployment.settings("gateway"), StreamSettings(), registry, FAST_PROJECTOR)
    await node.start()
    province_client = await connection.connect(deployment.settings(f"province-{ev.PROVINCE}"))
    province = ProvinceSimulator(province_client, ProvinceSettings(province=ev.PROVINCE))
    await province.start()
    try:
        async with deployment.party(f"unit-{WARD}") as unit:
            replies = await submit(
                unit.client,
                WARD,
                [
                    ev.received("HS-1", applicant={"name": "Trần Thị Bí Mật"}),
                    ev.dossier_event("transferred", "HS-1", interconnect=True),
                ],
            )
            assert all(r["ok"] for r in replies), replies
        await until(lambda: province.results_acknowledged == 1, what="the province's result")
        assert node.projector is not None
        await node.projector.wait_until_current()
        async with dashboard_on(deployment.settings("dashboard"), registry) as board:
            assert board.nats.party == "dashboard"
            got = {path: await http_get(f"{board.url}{path}") for path in PAGES}
            shown = json.loads(got["/api/interconnection"].body)
    finally:
        await province.stop()
        await province_client.close()
        await node.stop()
    assert {path: g.status for path, g in got.items()} == dict.fromkeys(PAGES, 200)
    assert list(connection.PERMISSION_DENIED) == []
    assert shown["leases"]["projector"] is not None
    assert [(s["site"], s["link"]) for s in shown["sites"]] == [(SITE, "never")]
    assert b"lienthong_lease_holder" in got["/metrics"].body
    assert all(b"Tr\xe1\xba\xa7n" not in g.body for g in got.values())


async def test_the_dashboard_party_may_not_submit_delete_purge_or_read_the_keys(
    deployment: SecureDeployment,
) -> None:
    registry = with_a_site()
    node = Node(deployment.settings("gateway"), StreamSettings(), registry, FAST_PROJECTOR)
    await node.start()
    try:
        async with deployment.party(f"unit-{WARD}") as unit:
            assert (await submit(unit.client, WARD, ev.received("HS-1")))["ok"]
        async with deployment.party("dashboard") as board:
            for subject in (
                f"onestop.submit.{WARD}",
                f"onestop.inbound.{WARD}",
                f"onestop.events.{WARD}.dossier.HS-2",
                f"onestop.reports.{WARD}.2021-04",
                "onestop.seals",
                f"{API}.STREAM.DELETE.{REPORTS_STREAM}",
                f"{API}.STREAM.PURGE.{EVENTS_STREAM}",
                f"{API}.STREAM.UPDATE.{REPORTS_STREAM}",
                f"{API}.STREAM.CREATE.MINE",
                f"{API}.STREAM.MSG.DELETE.{REPORTS_STREAM}",
                f"{API}.CONSUMER.DELETE.{EVENTS_STREAM}.reports-projector",
                f"{API}.CONSUMER.DURABLE.CREATE.{REPORTS_STREAM}.mine",
                f"{API}.CONSUMER.CREATE.{EVENTS_STREAM}",  # no replay of the log
                f"{API}.DIRECT.GET.{KEYS_STREAM}",
                f"{API}.DIRECT.GET.{KEYS_STREAM}.onestop.keys.{WARD}.HS-1",
                f"{API}.STREAM.MSG.GET.{KEYS_STREAM}",
                f"{API}.STREAM.INFO.{KEYS_STREAM}",
                f"{API}.CONSUMER.CREATE.{KEYS_STREAM}",
                f"{API}.DIRECT.GET.{ERASURES_STREAM}",
                f"{API}.DIRECT.GET.{DISCLOSURES_STREAM}",
                "$KV.ONESTOP_DELIVERIES.x",
                "$KV.ONESTOP_LEASES.projector",
            ):
                assert await board.refused_publish(subject), subject
            assert await board.refused_subscribe(f"onestop.submit.{WARD}")
            assert await board.refused_subscribe("_INBOX_gateway.>")
    finally:
        await node.stop()


def test_the_dashboard_command_serves_with_the_dashboard_partys_creds(
    deployment: SecureDeployment, subprocess_env: dict[str, str]
) -> None:
    async def provision() -> None:
        service = Gateway(deployment.settings("gateway"), StreamSettings(), with_a_site())
        await service.start()
        await service.stop()

    asyncio.run(provision())
    port = free_port()
    board = LienthongProcess(
        [
            *[sys.executable, "-m", "lienthong.cli", "dashboard", "--port", str(port)],
            *["--nats-url", deployment.server.url, "--creds", str(deployment.creds("dashboard"))],
        ],
        subprocess_env,
    )
    try:
        board.wait_for("dashboard at ")
        url = f"http://127.0.0.1:{port}"
        got = {p: asyncio.run(http_get(f"{url}{p}")).status for p in PAGES[:2] + PAGES[6:7]}
        metrics = asyncio.run(http_get(f"{url}/metrics"))
    finally:
        assert board.stop() == 0
    assert got == dict.fromkeys(PAGES[:2] + PAGES[6:7], 200)
    assert metrics.status == 200
    started = [json.loads(line) for line in board.lines if '"dashboard.started"' in line]
    assert [s["party"] for s in started] == ["dashboard"]
    assert "permission" not in board.stderr


def test_serve_runs_its_dashboard_role_as_the_dashboard_party(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    folder = tmp_path / "security"
    port, board_port = free_port(), free_port()
    init(folder, Registry.load(), Layout(listen_host="127.0.0.1", port=port, leaf_port=-1))
    serve = LienthongProcess(
        [
            *[sys.executable, "-m", "lienthong.cli", "serve", "--security", str(folder)],
            *["--roles", "gateway,projector,dashboard", "--dashboard-port", str(board_port)],
        ],
        subprocess_env,
    )
    try:
        serve.wait_for("dashboard at ")
        url = f"http://127.0.0.1:{board_port}"
        got = {p: asyncio.run(http_get(f"{url}{p}")).status for p in ("/metrics", "/api/units")}
        interconnection = asyncio.run(http_get(f"{url}/api/interconnection"))
    finally:
        assert serve.stop() == 0
    assert got == {"/metrics": 200, "/api/units": 200}
    assert interconnection.status == 200
    started = [json.loads(line) for line in serve.lines if '"dashboard.started"' in line]
    assert [s["party"] for s in started] == ["dashboard"]
    assert "permission" not in serve.stderr


def test_serve_with_a_security_folder_lacking_the_dashboard_party_says_so_in_one_line(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    import subprocess

    folder = tmp_path / "security"
    init(folder, Registry.load(), Layout(listen_host="127.0.0.1", port=free_port(), leaf_port=-1))
    (folder / "creds" / "dashboard.nk").unlink()
    done = subprocess.run(
        [
            *[sys.executable, "-m", "lienthong.cli", "serve", "--security", str(folder)],
            *["--roles", "gateway,dashboard", "--dashboard-port", str(free_port())],
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"lienthong serve: {folder / 'creds' / 'dashboard.nk'} not found: run `lienthong "
        f"security init {folder}` again, which adds the read-only dashboard party and keeps "
        "every other key"
    ]
