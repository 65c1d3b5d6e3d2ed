"""CONTRACT section 7: `lienthong export`, a period's events from the log, without personal data."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client

from consumers.export import export, selection
from gateway import cli
from gateway.embedded import NatsServer
from gateway.registry import Level, Registry, RegistryFile, Unit
from gateway.streams import EVENTS_STREAM
from tests import events as ev
from tests.helpers import GatewayStarter, connected, free_port, submit

OTHER_CITY = "547"
OTHER_CITY_WARD = "21700"
SECRET_NAME = "Trần Thị Riêng Tư"
SECRET_ID = "052190001234"
APPLICANT = {"name": SECRET_NAME, "id_number": SECRET_ID}


def _due(**fields: Any) -> dict[str, Any]:
    return {"due_at": "2021-05-20T17:00:00+07:00", "applicant": APPLICANT, **fields}


# Both sides of the April/May boundary, written with each offset.
APRIL_Z = ev.received("APR-Z", occurred_at="2021-04-30T16:59:59Z", **_due())
MAY_Z = ev.received("MAY-Z", occurred_at="2021-04-30T17:00:00Z", **_due())
APRIL_7 = ev.received("APR-7", occurred_at="2021-04-30T23:59:59+07:00", **_due())
MAY_7 = ev.received("MAY-7", occurred_at="2021-05-01T00:00:00+07:00", **_due())
CITY_DESK = ev.document("DOC-540", unit=ev.CITY)
OTHER_WARD_COPY = ev.copy("COPY-1", unit=ev.OTHER_WARD)
MARCH = ev.received("MAR-1", unit=ev.OTHER_WARD, occurred_at="2021-03-31T16:59:59Z")
OTHER_CITY_APRIL = ev.received("OC-1", unit=OTHER_CITY_WARD, **_due())

LOG = [APRIL_Z, MAY_Z, APRIL_7, MAY_7, CITY_DESK, OTHER_WARD_COPY, MARCH, OTHER_CITY_APRIL]


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    """The default registry and a second city of the same province, with one ward."""
    default = Registry.load()
    units = [default[c] for c in default.codes()] + [
        Unit(code=OTHER_CITY, name="Thị xã thử", level=Level.DISTRICT, parent=ev.PROVINCE),
        Unit(code=OTHER_CITY_WARD, name="Phường thử", level=Level.WARD, parent=OTHER_CITY),
    ]
    path = tmp_path / "two-cities.json"
    path.write_bytes(msgspec.json.encode(RegistryFile(units=units)))
    return path


@pytest.fixture
def two_cities(registry_file: Path) -> Registry:
    return Registry.load(registry_file)


@pytest.fixture
async def log(gateways: GatewayStarter, two_cities: Registry, nats_server: NatsServer) -> None:
    await gateways.start(registry=two_cities)
    async with connected(nats_server.url) as unit:  # opened once the gateway serves
        for event in LOG:
            [reply] = await submit(unit, event["unit"], [event])
            assert reply["ok"], reply


async def exported(
    client: Client, registry: Registry, period: str, unit: str | None = None
) -> list[dict[str, Any]]:
    out = io.BytesIO()
    count = await export(client, selection(registry, period, unit), out)
    lines = [msgspec.json.decode(line) for line in out.getvalue().splitlines()]
    assert count == len(lines)
    return lines


def ids(lines: list[dict[str, Any]]) -> list[str]:
    return [line["event"]["event_id"] for line in lines]


def public(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "applicant"}


async def test_the_period_boundary_is_midnight_in_vietnam_in_either_offset(
    log: None, client: Client, two_cities: Registry
) -> None:
    april = await exported(client, two_cities, "2021-04", ev.WARD)
    may = await exported(client, two_cities, "2021-05", ev.WARD)
    assert ids(april) == [APRIL_Z["event_id"], APRIL_7["event_id"]]
    assert ids(may) == [MAY_Z["event_id"], MAY_7["event_id"]]
    # The event as submitted, less the applicant; re-encoded from the decoded Struct.
    assert [line["event"] for line in may] == [public(MAY_Z), public(MAY_7)]
    march = await exported(client, two_cities, "2021-03")
    assert ids(march) == [MARCH["event_id"]]


async def test_a_city_takes_its_desk_and_wards_not_another_citys(
    log: None, client: Client, two_cities: Registry
) -> None:
    city = await exported(client, two_cities, "2021-04", ev.CITY)
    assert ids(city) == [e["event_id"] for e in (APRIL_Z, APRIL_7, CITY_DESK, OTHER_WARD_COPY)]
    other = await exported(client, two_cities, "2021-04", OTHER_CITY)
    assert ids(other) == [OTHER_CITY_APRIL["event_id"]]
    province = await exported(client, two_cities, "2021-04", ev.PROVINCE)
    everyone = await exported(client, two_cities, "2021-04")
    assert ids(province) == ids(everyone) == ids(city) + ids(other)
    seqs = [line["seq"] for line in everyone]
    assert seqs == sorted(seqs)  # log order


async def test_nothing_selected_is_an_empty_export(
    log: None, client: Client, two_cities: Registry
) -> None:
    assert await exported(client, two_cities, "2021-06") == []
    assert await exported(client, two_cities, "2021-04", "21556") == []  # a ward with no events


async def test_the_command_exports_without_personal_data_and_leaves_the_log_as_it_was(
    log: None,
    client: Client,
    nats_server: NatsServer,
    registry_file: Path,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    js = client.jetstream()
    before = await js.stream_info(EVENTS_STREAM)
    output = tmp_path / "540-2021-04.jsonl"
    started = datetime.now(UTC)
    before_files = os.listdir(tmp_path)
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "gateway.cli", "export", "--period", "2021-04"],
        *["--unit", ev.CITY, "--output", str(output), "--registry", str(registry_file)],
        *["--nats-url", nats_server.url],
        env=subprocess_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()
    assert process.returncode == 0, stderr
    assert out == b""
    assert "exported 4 events of 2021-04" in stderr
    assert f"unit {ev.CITY}" in stderr
    text = output.read_text(encoding="utf-8")
    assert SECRET_NAME not in text
    assert SECRET_ID not in text
    assert "applicant" not in text
    lines = [msgspec.json.decode(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == [
        public(e) for e in (APRIL_Z, APRIL_7, CITY_DESK, OTHER_WARD_COPY)
    ]
    for line in lines:
        stored = await js.get_msg(EVENTS_STREAM, line["seq"])
        assert msgspec.json.decode(stored.data or b"")["event_id"] == line["event"]["event_id"]
        at = datetime.fromisoformat(line["stored_at"])
        assert line["stored_at"].endswith("Z")
        assert at.tzinfo is not None
        assert at <= started
    after = await js.stream_info(EVENTS_STREAM)
    assert (after.state.messages, after.state.last_seq) == (
        before.state.messages,
        before.state.last_seq,
    )
    assert after.state.consumer_count == before.state.consumer_count == 0
    assert sorted(os.listdir(tmp_path)) == sorted([*before_files, output.name])


def run_export(*argv: str) -> int:
    """The command as `lienthong export` runs it, minus `main`'s logging set-up (which would
    bind structlog to this test's captured stderr for the tests after it)."""
    args = cli.parser().parse_args(["export", *argv])
    return cli.run(args)


def test_a_log_that_cannot_be_read_is_one_line_and_exit_2_with_the_reason(
    nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    assert run_export("--period", "2021-04", "--nats-url", nowhere) == 2
    assert "cannot reach NATS at" in capsys.readouterr().err
    # A server without the stream: not a (copy of the) log.
    assert run_export("--period", "2021-04", "--nats-url", nats_server.url) == 2
    err = capsys.readouterr().err
    assert "stream not found" in err
    assert len(err.strip().splitlines()) == 1, err
