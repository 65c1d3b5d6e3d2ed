"""CONTRACT section 7: rebuild every report from the log alone and compare it with what was
published; rebuild a report as it stood at a past moment; show one dossier's whole history.
None of it changes the log or sends anything."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client

from consumers import report_store
from consumers.projector import ReportProjector
from consumers.rebuild import BadSelection, compare, published, rebuild, selection
from gateway import connection
from gateway.embedded import NatsServer
from gateway.history import dossier_history, render
from gateway.jetstream import JetStream
from gateway.registry import Registry
from gateway.service import Gateway
from gateway.settings import NatsSettings, StreamSettings
from gateway.streams import EVENTS_STREAM, REPORTS_STREAM
from gateway.subjects import inbound_subject
from tests import events as ev
from tests.helpers import free_port, submit

APRIL = "2021-04"


async def stream_sizes(client: Client) -> tuple[int, int]:
    js = client.jetstream()
    events = (await js.stream_info(EVENTS_STREAM)).state.messages
    reports = (await js.stream_info(REPORTS_STREAM)).state.messages
    return events, reports


async def doctor(client: Client, unit: str, period: str, **dossiers: Any) -> None:
    """Publish a revision whose dossier figures differ as given (`in_progress={"overdue": 0}`),
    as a faulty projector would."""
    js = JetStream(client, 5)
    current = await report_store.current_report(js, unit, period)
    assert current is not None
    figures = msgspec.to_builtins(current.report)
    for name, change in dossiers.items():
        figures["dossiers"][name].update(change)
    figures["revision"] += 1
    wrong = msgspec.convert(figures, type=type(current.report))
    await report_store.publish(js, wrong, current.seq)


async def test_rebuild_equals_what_was_published_and_changes_nothing(
    projector: ReportProjector, client: Client, registry: Registry
) -> None:
    await submit(client, ev.WARD, [ev.received("A-1"), ev.dossier_event("resolved", "A-1")])
    await submit(client, ev.OTHER_WARD, ev.received("A-2", unit=ev.OTHER_WARD))
    await projector.wait_until_current()
    before = await stream_sizes(client)
    everything = selection(registry, None, None)
    rebuilt = await rebuild(client, registry)
    comparisons = compare(rebuilt.book, await published(client, everything), datetime.now(UTC))
    # Two wards, their city and their province, one period each.
    assert [(c.unit, c.period) for c in comparisons] == [
        (ev.WARD, APRIL),
        (ev.OTHER_WARD, APRIL),
        (ev.PROVINCE, APRIL),
        (ev.CITY, APRIL),
    ]
    assert all(c.equal for c in comparisons)
    assert await stream_sizes(client) == before


async def test_a_published_figure_that_differs_is_named_with_both_values(
    projector: ReportProjector, client: Client, registry: Registry
) -> None:
    await submit(client, ev.WARD, ev.received("A-3"))  # due 12 April, never resolved: overdue
    await projector.wait_until_current()
    await doctor(client, ev.WARD, APRIL, in_progress={"overdue": 0, "within_deadline": 1})
    chosen = selection(registry, ev.WARD, APRIL)
    rebuilt = await rebuild(client, registry)
    (ward,) = compare(rebuilt.book, await published(client, chosen), datetime.now(UTC), chosen)
    assert not ward.equal
    assert [d.line() for d in ward.differences] == [
        "dossiers.in_progress.within_deadline: rebuilt 0, published 1",
        "dossiers.in_progress.overdue: rebuilt 1, published 0",
    ]


async def test_a_report_on_one_side_only_differs_in_every_figure(
    projector: ReportProjector, client: Client, registry: Registry
) -> None:
    await submit(client, ev.WARD, ev.received("A-5"))
    await projector.wait_until_current()
    rebuilt = await rebuild(client, registry)
    # An empty book stands for a log that lost its events: every published report differs.
    lost = compare(
        type(rebuilt.book)(),
        await published(client, selection(registry, None, None)),
        datetime.now(UTC),
    )
    assert lost
    assert all(c.rebuilt is None and not c.equal for c in lost)
    assert "dossiers.received.total" in {d.field for d in lost[0].differences}


async def test_a_city_selection_is_its_roll_up_of_the_units_below_it(
    projector: ReportProjector, client: Client, registry: Registry
) -> None:
    await submit(client, ev.WARD, ev.received("R-1"))
    await submit(client, ev.OTHER_WARD, [ev.received("R-2", unit=ev.OTHER_WARD)])
    await projector.wait_until_current()
    chosen = selection(registry, ev.CITY, None)
    rebuilt = await rebuild(client, registry)
    (city,) = compare(rebuilt.book, await published(client, chosen), datetime.now(UTC), chosen)
    assert (city.unit, city.period, city.equal) == (ev.CITY, APRIL, True)
    assert city.rebuilt is not None
    assert city.rebuilt.dossiers.received.total == 2


async def test_a_wards_reports_run_to_the_latest_period_of_any_units_events(
    projector: ReportProjector, client: Client, registry: Registry
) -> None:
    await submit(client, ev.WARD, ev.received("P-1"))  # April only
    may = ev.received("P-2", unit=ev.OTHER_WARD, occurred_at="2021-05-03T08:00:00+07:00",
                      due_at="2021-05-10T17:00:00+07:00")  # fmt: skip
    await submit(client, ev.OTHER_WARD, may)
    await projector.wait_until_current()
    chosen = selection(registry, ev.WARD, None)
    rebuilt = await rebuild(client, registry)
    comparisons = compare(rebuilt.book, await published(client, chosen), datetime.now(UTC), chosen)
    assert [(c.period, c.equal) for c in comparisons] == [(APRIL, True), ("2021-05", True)]


def test_a_unit_not_in_the_registry_or_a_malformed_period_is_refused(registry: Registry) -> None:
    with pytest.raises(BadSelection, match="unit 99999 is not in the registry"):
        selection(registry, "99999", None)
    with pytest.raises(BadSelection, match="give YYYY-MM"):
        selection(registry, ev.WARD, "2021-4")


async def test_as_of_a_moment_counts_only_events_stored_by_then_against_the_revision_then(
    projector: ReportProjector, client: Client, registry: Registry
) -> None:
    await submit(client, ev.WARD, ev.received("A-4"))
    await projector.wait_until_current()  # revision 1: in progress
    moment = datetime.now(UTC)
    await submit(client, ev.WARD, ev.dossier_event("resolved", "A-4"))
    await projector.wait_until_current()  # revision 2: resolved
    chosen = selection(registry, ev.WARD, APRIL)
    then = await rebuild(client, registry, stored_by=moment)
    assert then.book.figures(ev.WARD, APRIL).dossiers.resolved.total == 0
    assert then.book.figures(ev.WARD, APRIL).dossiers.in_progress.total == 1
    current_then = await published(client, chosen, moment)
    assert current_then[(ev.WARD, APRIL)].report.revision == 1
    (at_moment,) = compare(then.book, current_then, moment, chosen)
    assert at_moment.equal
    (against_now,) = compare(then.book, await published(client, chosen), moment, chosen)
    assert "dossiers.resolved.total: rebuilt 0, published 1" in [
        d.line() for d in against_now.differences
    ]


def run_rebuild(url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "rebuild", "--nats-url", url, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_lienthong_rebuild_prints_the_official_form_and_the_diff_and_exits_accordingly(
    projector: ReportProjector,
    client: Client,
    nats_server: NatsServer,
    subprocess_env: dict[str, str],
) -> None:
    await submit(client, ev.WARD, ev.received("C-1"))
    await projector.wait_until_current()
    args = ("--unit", ev.WARD, "--period", APRIL)
    equal = await asyncio.to_thread(run_rebuild, nats_server.url, subprocess_env, *args)
    assert equal.returncode == 0, equal.stderr
    assert "Báo cáo tháng 04/2021 — Phường Nhơn Bình" in equal.stdout
    assert "rebuilt from the log, chính thức / final" in equal.stdout
    assert "equal to what was published" in equal.stdout
    assert "1 reports rebuilt from the log: all equal to what was published" in equal.stdout
    assert "replaying the log: 1 in " in equal.stderr  # progress; a bar too on a terminal
    await doctor(client, ev.WARD, APRIL, in_progress={"overdue": 0, "within_deadline": 1})
    differs = await asyncio.to_thread(run_rebuild, nats_server.url, subprocess_env, *args)
    assert differs.returncode == 1, differs.stderr
    assert "published: revision 2 (current)" in differs.stdout
    assert "  dossiers.in_progress.overdue: rebuilt 1, published 0" in differs.stdout
    as_json = await asyncio.to_thread(
        run_rebuild, nats_server.url, subprocess_env, *args, "--format", "json"
    )
    assert as_json.returncode == 1, as_json.stderr
    document = msgspec.json.decode(as_json.stdout)
    (report,) = document["reports"]
    assert (report["unit"], report["equal"], report["published"]["revision"]) == (
        ev.WARD,
        False,
        2,
    )
    assert {"field": "dossiers.in_progress.overdue", "rebuilt": 1, "published": 0} in report[
        "differences"
    ]
    assert report["rebuilt"]["dossiers"]["in_progress"]["overdue"] == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--unit", "99999"), "unit 99999 is not in the registry"),
        (("--period", "April"), "--period 'April' is not a period: give YYYY-MM"),
        (("--as-of", "2021-05-01T00:00:00"), "needs an offset"),
        (("--as-of", "yesterday"), "is not an RFC 3339 moment"),
        ((), "cannot reach NATS at"),  # no server at the URL
    ],
)
def test_lienthong_rebuild_with_a_bad_argument_or_no_server_says_so_in_one_line_and_exits_2(
    subprocess_env: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    run = run_rebuild(f"nats://127.0.0.1:{free_port()}", subprocess_env, *args)
    assert run.returncode == 2
    assert says in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


AUDITOR_ONLY_READS = """
no_auth_user: admin
authorization {
  users: [
    { user: admin, password: admin }
    { user: auditor, password: auditor, permissions: {
        publish: { allow: [
          "$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.MSG.GET.*",
          "$JS.API.DIRECT.GET.>", "$JS.API.CONSUMER.CREATE.*", "$JS.API.CONSUMER.CREATE.*.>",
          "$JS.API.CONSUMER.INFO.*.*", "$JS.API.CONSUMER.DELETE.*.*", "$JS.FC.>"
        ] }
        subscribe: { allow: ["_INBOX.>"] }
    } }
  ]
}
"""


@pytest.fixture
async def guarded_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    with NatsServer(tmp_path / "guarded", extra_config=AUDITOR_ONLY_READS) as server:
        yield server


async def test_lienthong_rebuild_needs_only_read_rights(
    guarded_server: NatsServer, registry: Registry, subprocess_env: dict[str, str]
) -> None:
    """An auditor who can read streams and make ephemeral consumers, and nothing else (no
    publishing, no durable consumers, no buckets), rebuilds and compares."""
    admin = NatsSettings(servers=(guarded_server.url,), request_timeout=2.0)  # no_auth_user
    gateway = Gateway(admin, StreamSettings(), registry)
    await gateway.start()
    try:
        client = await connection.connect(admin)
        projector = ReportProjector(client, registry)
        await projector.start()
        try:
            await submit(client, ev.WARD, ev.received("RO-1"))
            await projector.wait_until_current()
        finally:
            await projector.stop()
        auditor = {
            **subprocess_env,
            "LIENTHONG_NATS_USER": "auditor",
            "LIENTHONG_NATS_PASSWORD": "auditor",
        }
        run = await asyncio.to_thread(
            run_rebuild, guarded_server.url, auditor, "--as-of", datetime.now(UTC).isoformat()
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "3 reports rebuilt from the log" in run.stdout  # the ward, its city, province
        assert "all equal to what was published" in run.stdout
        await client.close()
    finally:
        await gateway.stop()


async def test_lienthong_rebuild_runs_on_a_copy_of_the_store(
    registry: Registry, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    with NatsServer(tmp_path / "live") as live:
        settings = NatsSettings(servers=(live.url,), request_timeout=2.0)
        gateway = Gateway(settings, StreamSettings(), registry)
        await gateway.start()
        client = await connection.connect(settings)
        projector = ReportProjector(client, registry)
        await projector.start()
        await submit(client, ev.WARD, [ev.received("K-1"), ev.dossier_event("resolved", "K-1")])
        await projector.wait_until_current()
        await projector.stop()
        await client.close()
        await gateway.stop()
    shutil.copytree(tmp_path / "live", tmp_path / "copy")  # a copy of the store at rest
    with NatsServer(tmp_path / "copy") as copy:
        run = await asyncio.to_thread(run_rebuild, copy.url, subprocess_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 reports rebuilt from the log: all equal to what was published" in run.stdout


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
