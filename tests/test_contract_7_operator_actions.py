"""Operators' actions are audited: a command that changes state records who ran it, when and on
what, outside the event log (never counted in a report), shown by `history` and `status`."""

from __future__ import annotations

import asyncio
import getpass
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client

from consumers.audit.operations import OperationsLog, Target, operator_actions
from consumers.interconnect.pending import records_for_dossier
from lienthong.embedded import NatsServer
from plumbing.records import DeliveryStatus
from plumbing.streams import OPERATIONS_STREAM
from tests import events as ev
from tests.helpers import log_size, until

# The interconnection tests' harness (a province stand-in, forwarders) and a unit's connection.
from tests.test_contract_5_outbound import (  # noqa: F401 (fixtures, found by name)
    FAST,
    Harness,
    accepted,
    harness,
    unit,
)

STUCK = "HS-PARKED"


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong.cli", *args, "--nats-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_resume_delivery_records_who_when_and_what_shown_by_history_and_status(
    nats_server: NatsServer,
    harness: Harness,  # noqa: F811 (the fixture imported above)
    unit: Client,  # noqa: F811
) -> None:
    sim = await harness.province(refuse=frozenset({STUCK}))
    await harness.forwarder(msgspec.structs.replace(FAST, park_after=0.5))
    await accepted(
        unit,
        ev.WARD,
        [ev.received(STUCK), ev.dossier_event("transferred", STUCK, interconnect=True)],
    )

    async def parked() -> bool:
        records = await records_for_dossier(unit, ev.WARD, STUCK)
        return bool(records) and records[0].status is DeliveryStatus.PARKED

    await until(parked, what="the dossier's delivery to park")
    sim.refuse.clear()
    events_before = await log_size(unit)

    resume = await asyncio.to_thread(
        run_cli, nats_server.url, "resume-delivery", "--unit", ev.WARD, "--dossier", STUCK
    )
    assert resume.returncode == 0, resume.stderr
    me = getpass.getuser()
    assert f"recorded as {me}'s action at" in resume.stdout

    [action] = await operator_actions(unit)
    assert action.command == f"resume-delivery --unit {ev.WARD} --dossier {STUCK}"
    assert (action.who, action.nats_user, action.os_user) == (me, None, me)
    [changed] = action.changed
    assert (changed.unit, changed.dossier_id) == (ev.WARD, STUCK)
    assert await log_size(unit) == events_before, "an operator action is no unit event"

    history = await asyncio.to_thread(
        run_cli, nats_server.url, "history", "--unit", ev.WARD, "--dossier", STUCK
    )
    assert history.returncode == 0, history.stderr
    [line] = [x for x in history.stdout.splitlines() if " operator " in x]
    assert f"`lienthong resume-delivery --unit {ev.WARD} --dossier {STUCK}` by OS user {me}" in line

    status = await asyncio.to_thread(run_cli, nats_server.url, "status")
    assert status.returncode == 0, status.stderr
    assert "Operator actions (1 recorded), the latest:" in status.stdout
    assert f"OS user {me} ran `lienthong resume-delivery --unit {ev.WARD}" in status.stdout


OPERATOR_USER = """
authorization { users: [ { user: "ops-le-van-a", password: "secret" } ] }
"""


@pytest.fixture
def guarded_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "guarded", extra_config=OPERATOR_USER) as server:
        yield server


async def test_who_is_the_nats_user_when_the_server_names_one(guarded_server: NatsServer) -> None:
    nc = await nats.connect(guarded_server.url, user="ops-le-van-a", password="secret")
    try:
        operations = OperationsLog(nc)
        await operations.ready()
        action = await operations.record(
            "resume-delivery --unit 21550", [Target(unit=ev.WARD, dossier_id="HS-9")]
        )
        assert action.who == action.nats_user == "ops-le-van-a"
        assert action.nats_account == "$G"
        assert await operator_actions(nc) == [action]
        info = await nc.jetstream().stream_info(OPERATIONS_STREAM)
        assert info.config.deny_delete
        assert info.config.deny_purge
    finally:
        await nc.close()
