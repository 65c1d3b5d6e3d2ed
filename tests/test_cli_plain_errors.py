"""Every command, against no server, without a right and with a bad argument, says so in one line
with what to do and exits 2; none prints a traceback for an expected condition."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lienthong import cli
from lienthong.command_errors import explain
from lienthong.embedded import NatsServer, NatsServerFailed
from tests.helpers import free_port

EVENTS = "events.jsonl"  # written into the test's folder, where the commands run

NO_SERVER: dict[str, list[str]] = {
    "serve": ["--roles", "gateway"],
    "status": [],
    "resume-delivery": [],
    "province-sim": [],
    "submit": [EVENTS, "--unit", "540"],
    "report": ["--unit", "540", "--period", "2021-04"],
    "history": ["--unit", "540", "--dossier", "000.00.21.H08-210405-0001"],
    "rebuild": [],
    "verify": [],
    "witness": ["--city-domain", "city"],
    "export": ["--period", "2021-04"],
    "erase": ["--unit", "540", "--dossier", "000.00.21.H08-210405-0001", "--reason", "asked"],
    "rotate-kek": [],
    "dashboard": ["--port", "0"],
}
"""Each command that talks to NATS, with arguments that are fine: only the server is missing."""

NEEDS_NO_SERVER = {"demo", "schema", "site", "security"}
"""The demo starts its own server; the schema is printed from the code; `site init` writes a
file, and `site seed` needs a unit marked as a site (tests/test_site_commands.py); `security
init` writes files (tests/test_security.py)."""

BAD_ARGUMENTS: list[tuple[str, list[str], str]] = [
    ("serve", ["--registry", "missing.json"], "cannot use missing.json"),
    ("serve", ["--roles", "gatway"], "no role gatway"),
    ("status", ["--registry", "missing.json"], "cannot use missing.json"),
    ("resume-delivery", ["--unit", "99999"], "unit 99999 is not in the registry"),
    ("province-sim", ["--drop-every", "-1"], "-1 is negative"),
    ("submit", ["missing.jsonl", "--unit", "540"], "cannot use missing.jsonl"),
    ("submit", [EVENTS, "--unit", "540", "--batch", "0"], "--batch 0"),
    ("report", ["--unit", "99999", "--period", "2021-04"], "unit 99999 is not in the registry"),
    ("report", ["--unit", "540", "--period", "2021-13"], "'2021-13' is not a period"),
    ("history", ["--unit", "99999", "--dossier", "x"], "unit 99999 is not in the registry"),
    ("rebuild", ["--period", "April"], "'April' is not a period"),
    ("verify", ["--witness-stream"], "expected one argument"),
    ("witness", [], "--city-domain"),
    ("export", ["--period", "2021-4"], "2021-4"),
    ("demo", ["--seed", "many"], "invalid int value"),
    ("dashboard", ["--registry", "missing.json"], "cannot use missing.json"),
    ("dashboard", ["--port", "eighty"], "invalid int value"),
    ("schema", ["--openapi"], "unrecognized arguments"),
    ("site", ["init", "99999"], "unit 99999 is not in the registry"),
    ("security", ["init", "sec", "--rotate", "unit-99999"], "no party unit-99999 to rotate"),
    ("site", ["init", "21550"], "not marked as a site"),
    ("erase", ["--resolved-before", "2021-13-01"], "'2021-13-01' is not a date"),
    ("erase", ["--unit", "540", "--dossier", "x"], "needs a reason"),
    ("rotate-kek", ["--all"], "unrecognized arguments"),
]

NO_RIGHTS = """
authorization {
  users: [
    { user: nobody, password: nobody, permissions: {
        publish: { deny: [">"] }
        subscribe: { allow: ["_INBOX.>"] }
    } }
  ]
}
"""
"""A party that may connect and nothing else."""


def lienthong(
    folder: Path, env: dict[str, str], *argv: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong.cli", *argv],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def says_one_line(run: subprocess.CompletedProcess[str], command: str, what: str) -> None:
    said = run.stdout + run.stderr
    assert run.returncode == 2, said
    assert "Traceback" not in said, said
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, said
    assert lines[0].startswith(f"lienthong {command}: "), said
    assert what in lines[0], said


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / EVENTS).write_text('{"type": "dossier.received"}\n')
    return tmp_path


def test_every_command_is_tried_here() -> None:
    """A command added later gets its cases here, or this fails."""
    actions = cli.parser()._subparsers._group_actions  # type: ignore[union-attr]
    commands = set(actions[0].choices)  # type: ignore[arg-type]
    assert commands == set(NO_SERVER) | NEEDS_NO_SERVER
    assert {command for command, _, _ in BAD_ARGUMENTS} == commands


@pytest.mark.parametrize("command", sorted(NO_SERVER))
def test_a_command_without_a_server_says_so_and_exits_2(
    command: str, folder: Path, subprocess_env: dict[str, str]
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    run = lienthong(folder, subprocess_env, command, *NO_SERVER[command], "--nats-url", url)
    says_one_line(run, command, f"cannot reach NATS at {url}")


@pytest.mark.parametrize(("command", "argv", "what"), BAD_ARGUMENTS)
def test_a_command_with_a_bad_argument_says_so_and_exits_2(
    command: str, argv: list[str], what: str, folder: Path, subprocess_env: dict[str, str]
) -> None:
    # A server nobody listens on: the argument is judged before anything is sent.
    nowhere = (
        [] if command in NEEDS_NO_SERVER else ["--nats-url", f"nats://127.0.0.1:{free_port()}"]
    )
    run = lienthong(folder, subprocess_env, command, *argv, *nowhere)
    says_one_line(run, command, what)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats", extra_config=NO_RIGHTS) as server:
        yield server


RIGHTS_NEEDED = sorted(set(NO_SERVER) - {"serve", "province-sim", "dashboard"})
"""The one-shot commands; a service without its rights is the parties' issue's to say."""


async def test_a_command_without_the_right_says_permission_denied_and_exits_2(
    guarded: NatsServer, folder: Path, subprocess_env: dict[str, str]
) -> None:
    env = {
        **subprocess_env,
        "LIENTHONG_NATS_USER": "nobody",
        "LIENTHONG_NATS_PASSWORD": "nobody",
        "LIENTHONG_NATS_REQUEST_TIMEOUT": "1",
    }
    runs = await asyncio.gather(
        *(
            asyncio.to_thread(lienthong, folder, env, c, *NO_SERVER[c], "--nats-url", guarded.url)
            for c in RIGHTS_NEEDED
        )
    )
    for command, run in zip(RIGHTS_NEEDED, runs, strict=True):
        says_one_line(run, command, "permission denied")


def test_an_embedded_server_that_cannot_start_is_said_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the port the embedded server would listen on, held
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = NatsServer(tmp_path / "nats", port=taken.getsockname()[1])
        with pytest.raises(NatsServerFailed) as failed:
            server.start(timeout=10)
    line = explain(failed.value, [])
    assert line is not None
    assert "\n" not in line, line
    assert line.startswith("the embedded nats-server did not start ("), line
    assert "address already in use" in line, line  # the server's own reason, in one line
