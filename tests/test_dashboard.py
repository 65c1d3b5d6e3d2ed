"""The dashboard's endpoints against a real gateway and projector: downloads that hold the
report, /metrics in Prometheus' format, /readyz that follows the projector, nothing that changes
anything, and no personal data anywhere."""

from __future__ import annotations

import asyncio
import csv
import io
import signal
import socket
import subprocess
import sys
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from openpyxl import load_workbook
from prometheus_client.parser import text_string_to_metric_families

from consumers.reports import report_store
from consumers.reports.projector import ReportProjector
from consumers.reports.report_format import rows
from gateway.service import Gateway
from lienthong.embedded import NatsServer
from lienthong.node import Node
from plumbing import connection
from plumbing.jetstream import JetStream
from plumbing.lease import PROJECTOR_LEASE, Lease
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.subjects import inbound_subject
from schemas.registry import Registry
from schemas.report import Report
from tests import events as ev
from tests.helpers import (
    FAST_PROJECTOR,
    GatewayStarter,
    connected,
    dashboard_on,
    free_port,
    http_get,
    submit,
    until,
)

APPLICANT = {"name": "Nguyễn Thị Riêng Tư", "id_number": "052190004321"}


def april(unit: str, n: int) -> list[dict[str, object]]:
    """n dossiers received in April 2021 (the applicant named on each), half resolved on time."""
    out: list[dict[str, object]] = []
    for i in range(n):
        dossier = f"{unit}-A{i}"
        out.append(ev.received(dossier, unit=unit, applicant=APPLICANT))
        if i % 2 == 0:
            out.append(ev.dossier_event("resolved", dossier, unit=unit))
    return out


async def published(client: Client, unit: str, period: str = "2021-04") -> Report:
    found = await report_store.current_report(JetStream(client, 5.0), unit, period)
    assert found is not None, f"no report of {unit} {period}"
    return found.report


@pytest.fixture
async def reports(projector: ReportProjector, client: Client) -> ReportProjector:
    """Two wards' April 2021 through the gateway, every report published."""
    await submit(client, ev.WARD, april(ev.WARD, 5))
    await submit(client, ev.OTHER_WARD, april(ev.OTHER_WARD, 2))
    await projector.wait_until_current()
    return projector


async def test_csv_and_xlsx_downloads_hold_the_report_one_row_per_figure(
    reports: ReportProjector, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    ward = await published(client, ev.WARD)
    async with dashboard_on(nats_settings, registry) as board:
        query = f"unit={ev.WARD}&period=2021-04"
        got_csv = await http_get(f"{board.url}/report.csv?{query}")
        got_xlsx = await http_get(f"{board.url}/report.xlsx?{query}")
    assert got_csv.status == 200
    assert got_csv.content_type.startswith("text/csv")
    lines = list(csv.reader(io.StringIO(got_csv.body.decode("utf-8-sig"))))
    assert lines[0] == ["Báo cáo tháng 04/2021 — Phường Nhơn Bình"]
    assert lines[2] == ["Chỉ tiêu", "Figure", "Phường Nhơn Bình"]
    expected = [(vi.strip(), en.strip(), value) for vi, en, value, _ in rows(ward)]
    assert [(r[0], r[1], float(r[2]) if r[2] else None) for r in lines[3:]] == expected

    assert got_xlsx.status == 200
    sheet = load_workbook(io.BytesIO(got_xlsx.body)).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert cells[0][0] == "Báo cáo tháng 04/2021 — Phường Nhơn Bình"
    assert [(r[0], r[1], r[2]) for r in cells[3:]] == expected
    received = sheet.cell(row=4, column=3)
    rate = sheet.cell(row=4 + [e[1] for e in expected].index("on-time rate"), column=3)
    assert (received.number_format, rate.number_format) == ("#,##0", "0.00%")


async def test_a_roll_up_downloads_with_one_column_per_unit_below_it(
    reports: ReportProjector, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    city = await published(client, ev.CITY)
    wards = {u: await published(client, u) for u in (ev.WARD, ev.OTHER_WARD)}
    async with dashboard_on(nats_settings, registry) as board:
        got = await http_get(f"{board.url}/report.xlsx?unit={ev.CITY}&period=2021-04")
    sheet = load_workbook(io.BytesIO(got.body)).active
    assert sheet is not None
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    names = {registry[u].name: u for u in wards}
    assert set(cells[2][2:-1]) == set(names)
    assert cells[2][-1] == "Thành phố Quy Nhơn (tổng / total)"
    for column, heading in enumerate(cells[2][2:-1], start=2):
        ward = wards[names[str(heading)]]
        assert [r[column] for r in cells[3:]] == [v for _, _, v, _ in rows(ward)]
    assert [r[-1] for r in cells[3:]] == [v for _, _, v, _ in rows(city)]


async def test_metrics_parse_and_count_the_submissions_this_process_served(
    nats_settings: NatsSettings, registry: Registry
) -> None:
    node = Node(
        nats_settings,
        StreamSettings(),
        registry,
        FAST_PROJECTOR,
        roles=frozenset({"gateway", "projector"}),
    )
    await node.start()
    try:
        async with (
            connected(nats_settings.servers[0]) as client,
            dashboard_on(nats_settings, registry) as board,
        ):
            before = samples((await http_get(f"{board.url}/metrics")).body)
            batch = [ev.received("M-1"), ev.received("M-2"), ev.received("M-3", unit="nope")]
            await submit(client, ev.WARD, batch)
            await submit(client, ev.WARD, batch[0])  # a resend: a duplicate
            assert node.projector is not None
            await node.projector.wait_until_current()
            await until(
                lambda: projector_caught_up(board.url), what="the projector's lag reaching 0"
            )
            after = samples((await http_get(f"{board.url}/metrics")).body)
    finally:
        await node.stop()

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("lienthong_events_total", code="ok") == 2
    assert delta("lienthong_events_total", code="unit_mismatch") == 1
    assert delta("lienthong_events_total", code="duplicate") == 1
    assert delta("lienthong_submissions_total", outcome="partly_refused") == 1
    assert delta("lienthong_submissions_total", outcome="accepted") == 1
    assert delta("lienthong_submit_seconds_count") == 2
    assert after[("lienthong_projector_lag_sequences", ())] == 0
    assert after[("lienthong_log_last_sequence", ())] == 2
    holders = [k for k, v in after.items() if k[0] == "lienthong_lease_holder" and v == 1]
    assert [dict(k[1])["role"] for k in holders] == ["projector"]
    assert after[("lienthong_seal_lag_sequences", ())] == 2  # no sealer runs: nothing sealed


async def test_metrics_count_the_provinces_messages_by_reply_code(
    nats_settings: NatsSettings, registry: Registry
) -> None:
    node = Node(nats_settings, StreamSettings(), registry, roles=frozenset({"gateway"}))
    await node.start()
    try:
        async with (
            connected(nats_settings.servers[0]) as client,
            dashboard_on(nats_settings, registry) as board,
        ):
            assert (await submit(client, ev.WARD, ev.received("IN-1")))["ok"]
            before = samples((await http_get(f"{board.url}/metrics")).body)
            result = {
                "message_id": "52-result-IN-1",
                "kind": "result",
                "unit": ev.WARD,
                "dossier_id": "IN-1",
                "sent_at": "2021-05-06T09:00:00+07:00",
                "body": {"outcome": "approved", "resolved_at": "2021-05-06T08:30:00+07:00"},
            }
            receipt = {**result, "message_id": "52-receipt-IN-1", "kind": "receipt", "body": {}}
            unknown = {**receipt, "message_id": "52-receipt-IN-9", "dossier_id": "IN-9"}
            answers = [
                await inbound(client, msgspec.json.encode(m))
                for m in (result, result, receipt, receipt, unknown)
            ]
            answers.append(await inbound(client, b"not json at all"))
            after = samples((await http_get(f"{board.url}/metrics")).body)
    finally:
        await node.stop()
    assert [a.get("ok") or a["error"]["code"] for a in answers] == [
        True, True, True, True, "unknown_entity", "malformed"
    ]  # fmt: skip

    def delta(**labels: str) -> float:
        key = ("lienthong_inbound_messages_total", tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta(kind="result", code="ok") == 1
    assert delta(kind="result", code="duplicate") == 1
    assert delta(kind="receipt", code="ok") == 1
    assert delta(kind="receipt", code="duplicate") == 1
    assert delta(kind="receipt", code="unknown_entity") == 1
    assert delta(kind="unreadable", code="malformed") == 1


async def inbound(client: Client, payload: bytes) -> dict[str, Any]:
    reply = await client.request(inbound_subject(ev.WARD), payload, timeout=10)
    answer: dict[str, Any] = msgspec.json.decode(reply.data)
    return answer


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def projector_caught_up(url: str) -> bool:
    return (
        samples((await http_get(f"{url}/metrics")).body).get(
            ("lienthong_projector_lag_sequences", ())
        )
        == 0
    )


class Ready(msgspec.Struct):
    ready: bool
    reasons: list[str]


async def readiness(url: str) -> tuple[int, Ready]:
    got = await http_get(f"{url}/readyz")
    return got.status, msgspec.json.decode(got.body, type=Ready)


async def test_readyz_is_ready_only_while_the_projector_holds_its_lease_and_is_caught_up(
    gateways: GatewayStarter, nats_settings: NatsSettings, registry: Registry
) -> None:
    await gateways.start()
    async with (
        connected(nats_settings.servers[0]) as client,
        dashboard_on(nats_settings, registry, ready_lag_seconds=0.0) as board,
    ):
        status, ready = await readiness(board.url)
        assert status == 503
        assert "no process holds the projector's lease" in ready.reasons
        assert "the report projector has never run on this log" in ready.reasons

        lease_client = await connection.connect(nats_settings)
        lease = Lease(lease_client, PROJECTOR_LEASE)
        assert await lease.try_acquire()
        projector_client = await connection.connect(nats_settings)
        projector = ReportProjector(projector_client, registry, FAST_PROJECTOR)
        await projector.start()
        await submit(client, ev.WARD, ev.received("R-1"))
        await projector.wait_until_current()
        await until(lambda: is_ready(board.url), what="/readyz ready")
        await projector.stop()

        await submit(client, ev.WARD, ev.received("R-2"))  # and nobody applies it
        status, ready = await readiness(board.url)
        assert status == 503
        assert [r.split(",")[0] for r in ready.reasons] == [
            "the projector is 1 events behind the log"
        ]

        projector = ReportProjector(projector_client, registry, FAST_PROJECTOR)
        await projector.start()
        await projector.wait_until_current()
        await until(lambda: is_ready(board.url), what="/readyz ready again")
        await projector.stop()
        await lease.release()
        await projector_client.close()
        await lease_client.close()


async def is_ready(url: str) -> bool:
    return (await readiness(url))[0] == 200


async def test_no_endpoint_shows_personal_data_and_none_changes_anything(
    reports: ReportProjector, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    q = f"unit={ev.CITY}&period=2021-04"
    paths = [
        "/",
        "/api/units",
        f"/api/report?{q}",
        f"/api/history?{q}",
        f"/api/trend?{q}",
        f"/api/overdue?{q}",
        "/api/interconnection",
        f"/report.csv?{q}",
        f"/report.csv?unit={ev.WARD}&period=2021-04",
        "/metrics",
        "/readyz",
        "/healthz",
    ]
    async with dashboard_on(nats_settings, registry) as board:
        for path in paths:
            got = await http_get(board.url + path)
            assert got.status in (200, 503), (path, got.status)
            text = got.body.decode("utf-8")
            for secret in APPLICANT.values():
                assert secret not in text, path
        for path in ("/", f"/api/report?{q}", "/report.csv", "/events", "/readyz"):
            for method in ("POST", "PUT", "DELETE"):
                assert (await http_get(board.url + path, method)).status == 405, (method, path)
        unknown = await http_get(f"{board.url}/api/report?unit=99999&period=2021-04")
    assert unknown.status == 404
    assert msgspec.json.decode(unknown.body) == {
        "error": "no report for unit '99999', period '2021-04'"
    }


def test_the_dashboard_command_without_a_server_is_one_line_and_exit_2() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "lienthong.cli", "dashboard", "--nats-url", "nats://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith("lienthong dashboard: cannot reach NATS at nats://127.0.0.1:9")


def run_verify(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong.cli", "verify", "--nats-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


class Verified(msgspec.Struct):
    intact: bool
    events: int
    altered: list[str]


class Interconnection(msgspec.Struct):
    verification: Verified | None


async def test_the_last_verify_result_is_shown_and_measured(
    reports: ReportProjector, client: Client, nats_settings: NatsSettings, registry: Registry
) -> None:
    url = nats_settings.servers[0]
    async with dashboard_on(nats_settings, registry) as board:

        async def shown() -> tuple[Verified | None, float | None]:
            got = await http_get(f"{board.url}/api/interconnection")
            metric = samples((await http_get(f"{board.url}/metrics")).body)
            verified = msgspec.json.decode(got.body, type=Interconnection).verification
            return verified, metric.get(("lienthong_verify_intact", ()))

        assert await shown() == (None, None)
        intact = await asyncio.to_thread(run_verify, url)
        assert intact.returncode == 0, intact.stdout + intact.stderr
        assert await shown() == (Verified(intact=True, events=11, altered=[]), 1)

        # A message written around the gateway: verify says ALTERED, and so does the dashboard.
        await client.jetstream().publish(f"onestop.events.{ev.WARD}.dossier.X", b"{}")
        altered = await asyncio.to_thread(run_verify, url)
        assert altered.returncode == 1, altered.stdout + altered.stderr
        verified, metric = await shown()
    assert verified is not None
    assert not verified.intact
    assert metric == 0
    assert verified.altered == [
        line for line in altered.stdout.splitlines() if line.startswith("ALTERED")
    ]
    assert verified.altered


@pytest.mark.slow
async def test_the_demo_with_dashboard_serves_the_city_report_until_told_to_stop(
    subprocess_env: dict[str, str],
) -> None:
    port = free_port()
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lienthong.cli",
        "demo",
        "--dashboard",
        str(port),
        env=subprocess_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert demo.stdout is not None
    try:
        while True:
            line = (await asyncio.wait_for(demo.stdout.readline(), 300)).decode()
            assert line, "the demo ended without serving the dashboard"
            if line.startswith("Dashboard: open "):
                break
        assert line.split()[2] == f"http://127.0.0.1:{port}/?unit=540&period=2021-04"
        got = await http_get(f"http://127.0.0.1:{port}/api/report?unit=540&period=2021-04")
        figures = {f["en"]: f["text"] for f in msgspec.json.decode(got.body)["figures"]}
        assert figures["Dossiers received, total"] == "5.618"
        assert figures["on-time rate"] == "99,12%"
    finally:
        demo.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(demo.wait(), 60)
    assert code == 0


async def test_serve_runs_the_dashboard_as_a_role_and_stops_it_on_sigterm(
    nats_server: NatsServer, subprocess_env: dict[str, str]
) -> None:
    port = free_port()
    serve = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "lienthong.cli", "serve", "--nats-url", nats_server.url],
        *["--roles", "gateway,projector,dashboard", "--dashboard-port", str(port)],
        env=subprocess_env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert serve.stderr is not None
    try:
        while True:
            line = (await asyncio.wait_for(serve.stderr.readline(), 60)).decode()
            assert line, "serve ended without serving the dashboard"
            if line.startswith("dashboard at "):
                break
        assert line.strip() == f"dashboard at http://127.0.0.1:{port}/"
        url = f"http://127.0.0.1:{port}"
        await until(lambda: is_ready(url), what="/readyz ready")
        async with connected(nats_server.url) as client:
            await submit(client, ev.WARD, ev.received("S-1"))
        await until(lambda: projector_caught_up(url), what="the projector's lag reaching 0")
        metric = samples((await http_get(f"{url}/metrics")).body)
        assert metric[("lienthong_events_total", (("code", "ok"),))] == 1
    finally:
        serve.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(serve.wait(), 60)
    assert code == 0


async def test_a_port_already_taken_is_one_line_and_exit_2(
    gateway: Gateway, nats_server: NatsServer, subprocess_env: dict[str, str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url = ["--nats-url", nats_server.url]
        for command in (
            ["dashboard", *url, "--port", str(port)],
            ["serve", *url, "--roles", "dashboard", "--dashboard-port", str(port)],
        ):
            run = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "lienthong.cli", "--log-level", "error", *command],
                env=subprocess_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 2, run.stderr
            assert run.stderr.strip().splitlines() == [
                f"lienthong {command[0]}: cannot serve the dashboard: cannot listen on "
                f"127.0.0.1:{port}: Address already in use"
            ], command
