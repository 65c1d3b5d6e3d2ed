"""CONTRACT section 7 on a log written to around the gateway: every audit reports each message
it cannot read (sequence, subject, why) and goes on; verify counts a message the gateway did not
write as tampering; the live projector and outbox count what they skip where `status` shows it.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

import msgspec
import pytest
from nats.aio.client import Client

from consumers.audit.export import export
from consumers.audit.export import selection as export_selection
from consumers.audit.history import dossier_history, render
from consumers.audit.rebuild import rebuild
from consumers.audit.skips import OUTBOX, PROJECTOR, skipped
from consumers.audit.verify import verify
from consumers.interconnect.outbox import OutboxTranslator
from consumers.reports.projector import ReportProjector
from gateway.service import Gateway
from lienthong.embedded import NatsServer
from plumbing.headers import msg_id
from plumbing.replay import Unreadable
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import submit, until

DOSSIER = f"onestop.events.{ev.WARD}.dossier.HS-1"


async def around_the_gateway(client: Client) -> tuple[int, int]:
    """A good dossier, then two messages published straight to its subject as anyone with the
    rights could: bytes that are no JSON, and a plausible event without the gateway's headers;
    their sequences."""
    replies = await submit(client, ev.WARD, [ev.received("HS-1"), ev.received("HS-2")])
    assert all(r["ok"] for r in replies)
    js = client.jetstream()
    garbage = await js.publish(DOSSIER, b"\x00 not an event")
    forged = ev.dossier_event("resolved", "HS-1", event_id="forged-1")
    plausible = await js.publish(DOSSIER, msgspec.json.encode(forged))
    return garbage.seq, plausible.seq


async def test_rebuild_reports_the_message_it_cannot_read_and_counts_the_rest(
    gateway: Gateway, client: Client, registry: Registry
) -> None:
    garbage, _ = await around_the_gateway(client)
    rebuilt = await rebuild(client, registry)
    assert [(u.seq, u.subject) for u in rebuilt.unreadable] == [(garbage, DOSSIER)]
    assert "JSON" in rebuilt.unreadable[0].why
    assert rebuilt.book.figures(ev.WARD, "2021-04").dossiers.received.total == 2


async def test_export_reports_the_message_it_cannot_read_and_writes_the_rest(
    gateway: Gateway, client: Client, registry: Registry
) -> None:
    garbage, plausible = await around_the_gateway(client)
    out = io.BytesIO()
    said: list[Unreadable] = []
    count = await export(client, export_selection(registry, "2021-04", ev.WARD), out, said.append)
    assert count == 3  # the two received, and the plausible resolution: it reads as an event
    assert [u.seq for u in said] == [garbage]
    seqs = [msgspec.json.decode(line)["seq"] for line in out.getvalue().splitlines()]
    assert seqs == [1, 2, plausible]


async def test_history_shows_the_message_it_cannot_read_among_the_dossiers_events(
    gateway: Gateway, client: Client
) -> None:
    garbage, _ = await around_the_gateway(client)
    lines = await dossier_history(client, ev.WARD, "HS-1")
    assert [line.what for line in lines] == ["dossier.received", "not an event", "dossier.resolved"]
    assert lines[1].source == f"log #{garbage}"
    assert "skipped:" in render(lines)


async def test_verify_counts_messages_not_written_by_the_gateway_as_tampering(
    gateway: Gateway, client: Client
) -> None:
    garbage, plausible = await around_the_gateway(client)
    result = await verify(client)
    assert not result.intact
    assert [u.seq for u in result.unreadable] == [garbage]
    assert [(f.seq, f.subject) for f in result.foreign] == [
        (garbage, DOSSIER),
        (plausible, DOSSIER),
    ]
    assert "Nats-Msg-Id" in result.foreign[1].why


async def test_an_event_in_the_gateways_form_this_version_cannot_read_is_no_tampering(
    gateway: Gateway, client: Client
) -> None:
    """A newer version's event type: unreadable here, but written the gateway's way."""
    await submit(client, ev.WARD, ev.received("HS-1"))
    newer = {**ev.dossier_event("escalated", "HS-1"), "event_id": "E-newer"}
    headers = {"Nats-Msg-Id": msg_id(ev.WARD, "E-newer")}
    await client.jetstream().publish(DOSSIER, msgspec.json.encode(newer), headers=headers)
    result = await verify(client)
    assert [u.seq for u in result.unreadable] == [2]
    assert result.foreign == []
    assert result.intact


def run_cli(command: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong.cli", command, "--nats-url", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("command", "args", "code"),
    [
        ("rebuild", (), 1),  # no projector ran: every rebuilt report differs from none published
        ("export", ("--period", "2021-04"), 0),
        ("verify", (), 1),
        ("history", ("--unit", ev.WARD, "--dossier", "HS-1"), 0),
    ],
)
async def test_no_audit_command_crashes_on_a_bad_log(
    gateway: Gateway,
    client: Client,
    nats_server: NatsServer,
    command: str,
    args: tuple[str, ...],
    code: int,
) -> None:
    garbage, _ = await around_the_gateway(client)
    run = await asyncio.to_thread(run_cli, command, nats_server.url, *args)
    assert "Traceback" not in run.stderr, run.stderr
    said = run.stdout + run.stderr
    assert run.returncode == code, said
    assert f"{garbage}" in said
    if command in ("rebuild", "export"):
        assert f"message {garbage} on {DOSSIER} is not an event" in said


async def test_the_projector_and_the_outbox_count_what_they_skip_where_status_shows_it(
    projector: ReportProjector,
    client: Client,
    registry: Registry,
    nats_server: NatsServer,
) -> None:
    outbox = OutboxTranslator(client, registry)
    await outbox.start()
    try:
        garbage, _ = await around_the_gateway(client)
        await projector.wait_until_current()

        async def both_recorded() -> bool:
            found = await skipped(client)
            return {PROJECTOR, OUTBOX} <= set(found)

        await until(both_recorded, what="the skips to be recorded")
    finally:
        await outbox.stop()
    found = await skipped(client)
    assert [s.seq for s in found[PROJECTOR]] == [garbage]
    assert [s.seq for s in found[OUTBOX]] == [garbage]
    status = await asyncio.to_thread(run_cli, "status", nats_server.url)
    assert status.returncode == 0, status.stderr
    assert (
        f"projector skipped 1 messages of the log that are not events; the latest: message "
        f"{garbage} on {DOSSIER}" in status.stdout
    )
    assert "outbox skipped 1 messages" in status.stdout
