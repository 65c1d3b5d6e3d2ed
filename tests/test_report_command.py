"""`lienthong report`: the current report of a unit and period, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import msgspec
import pytest
from nats.aio.client import Client

from consumers.reports import report_store
from consumers.reports.projector import ReportProjector
from lienthong.embedded import NatsServer
from plumbing.jetstream import JetStream
from schemas.report import Report
from tests import events as ev
from tests.helpers import submit


@pytest.fixture
async def april(projector: ReportProjector, client: Client) -> Report:
    """The city's April 2021 report after a few dossiers and documents: 2 resolved, 1 open."""
    await submit(
        client,
        ev.WARD,
        [
            ev.received("RC-1"),
            ev.received("RC-2"),
            ev.received("RC-3"),
            ev.dossier_event("resolved", "RC-1"),
            ev.dossier_event("resolved", "RC-2", occurred_at="2021-04-30T09:00:00+07:00"),
        ],
    )
    await projector.wait_until_current()
    found = await report_store.current_report(JetStream(client, 5), ev.CITY, "2021-04")
    assert found is not None
    return found.report


def run_report(
    server: NatsServer, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong.cli", "report", "--nats-url", server.url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_json_is_the_published_report(
    april: Report, nats_server: NatsServer, subprocess_env: dict[str, str]
) -> None:
    run = run_report(
        nats_server, subprocess_env, "--unit", ev.CITY, "--period", "2021-04", "--format", "json"
    )
    assert run.returncode == 0, run.stderr
    assert msgspec.json.decode(run.stdout, type=Report) == april


async def test_csv_has_one_row_per_figure_with_both_names(
    april: Report, nats_server: NatsServer, subprocess_env: dict[str, str]
) -> None:
    run = run_report(
        nats_server, subprocess_env, "--unit", ev.CITY, "--period", "2021-04", "--format", "csv"
    )
    assert run.returncode == 0, run.stderr
    rows = {r["figure_en"]: r for r in csv.DictReader(io.StringIO(run.stdout))}
    assert rows["Dossiers received, total"]["value"] == "3"
    assert rows["Resolved"]["figure_vi"] == "Đã giải quyết và trả kết quả"
    assert rows["on time or early"]["value"] == str(
        april.dossiers.resolved.early + april.dossiers.resolved.on_time
    )
    assert rows["on-time rate"]["value"] == str(april.dossiers.resolved.on_time_rate)
    assert {r["unit"] for r in rows.values()} == {ev.CITY}


async def test_table_uses_the_city_reports_wording_and_vietnamese_numbers(
    april: Report, nats_server: NatsServer, subprocess_env: dict[str, str]
) -> None:
    run = run_report(nats_server, subprocess_env, "--unit", ev.CITY, "--period", "2021-04")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Báo cáo tháng 04/2021 — Thành phố Quy Nhơn" in out
    assert "chính thức / final" in out
    for wording in ("Kỳ trước chuyển sang", "Đúng và trước hạn", "Tỷ lệ đúng hẹn", "Quá hạn"):
        assert wording in out
    rate = april.dossiers.resolved.on_time_rate
    assert rate is not None
    assert f"{rate * 100:.2f}%".replace(".", ",") in out  # 100,00%: a comma, as the city writes


async def test_a_report_that_does_not_exist_is_said_so(
    april: Report, nats_server: NatsServer, subprocess_env: dict[str, str]
) -> None:
    run = run_report(nats_server, subprocess_env, "--unit", ev.CITY, "--period", "1999-01")
    assert run.returncode == 1
    assert "no report for unit 540, period 1999-01" in run.stderr
