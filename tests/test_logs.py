"""Logs carry counts, codes, units and timings: never an event, never personal data.

Checked twice: in-process, with the gateway's own JSON logging captured, and end to end with
`lienthong serve` and `lienthong submit` as the processes an operator runs.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from nats.aio.client import Client
from structlog.testing import capture_logs

from gateway import logs
from gateway.service import Gateway
from tests import events as ev
from tests.helpers import LienthongProcess, free_port, submit

NAME = "Nguyễn Văn Bí Mật"
ID_NUMBER = "052090009999"
APPLICANT = {"name": NAME, "id_number": ID_NUMBER}
LIENTHONG = [str(Path(sys.executable).parent / "lienthong")]


def personal_submissions() -> list[tuple[str, Any]]:
    """Submissions holding personal data, answered every way a submission can be answered."""
    received = ev.received("HS-1", applicant=APPLICANT)
    return [
        ("accepted", received),
        ("duplicate", received),
        ("conflict", ev.received("HS-1", applicant=APPLICANT)),
        ("invalid", ev.received("HS-2", applicant=APPLICANT, channel="online")),
        ("invalid", ev.received("HS-3", applicant={"name": NAME, "id_number": ID_NUMBER * 3})),
        ("invalid", ev.received("HS-4", applicant=APPLICANT, channel=NAME)),
        ("invalid", ev.received(NAME, applicant=APPLICANT, due_at=ID_NUMBER)),
        ("unit_mismatch", ev.received("HS-5", unit=ev.OTHER_WARD, applicant=APPLICANT)),
        ("malformed", ev.wire(received)[:-9]),
        ("malformed", ev.wire(NAME)),
        ("batch", [ev.received("HS-6", applicant=APPLICANT), NAME, {"applicant": APPLICANT}]),
    ]


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The gateway's own logging (gateway.logs, JSON lines) into a buffer; restored after."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    logs.configure("debug", json=True)
    yield buffer
    structlog.configure(**saved)


async def test_no_personal_data_in_the_gateways_json_logs(
    json_logs: io.StringIO, gateway: Gateway, client: Client
) -> None:
    for _, payload in personal_submissions():
        await submit(client, ev.WARD, payload)
    lines = [msgspec.json.decode(line) for line in json_logs.getvalue().splitlines()]
    batches = [line for line in lines if line["event"] == "submit.batch"]
    assert len(batches) == len(personal_submissions())
    text = json_logs.getvalue()
    assert NAME not in text
    assert ID_NUMBER not in text
    assert NAME.encode("unicode_escape").decode() not in text  # nor escaped


async def test_no_personal_data_in_log_events_captured(gateway: Gateway, client: Client) -> None:
    with capture_logs() as captured:
        for _, payload in personal_submissions():
            await submit(client, ev.WARD, payload)
    assert [e["event"] for e in captured].count("submit.batch") == len(personal_submissions())
    text = repr(captured)
    assert NAME not in text
    assert ID_NUMBER not in text


async def test_submit_batch_log_line_has_unit_counts_and_time(
    gateway: Gateway, client: Client
) -> None:
    batch: list[Any] = [
        ev.received("HS-1", applicant=APPLICANT),
        ev.received("HS-2", channel="online"),
        42,
        ev.copy("SC-1"),
    ]
    batch.append(batch[0])
    with capture_logs() as captured:
        await submit(client, ev.WARD, batch)
    [line] = [e for e in captured if e["event"] == "submit.batch"]
    assert line["unit"] == ev.WARD
    assert line["events"] == 5
    assert line["accepted"] == 2
    assert line["duplicates"] == 1
    assert line["refused"] == {"invalid": 1, "malformed": 1}
    assert isinstance(line["ms"], float | int)
    assert line["ms"] >= 0


@pytest.mark.slow
def test_serve_and_submit_log_one_line_per_batch_and_no_personal_data(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    received = ev.received("HS-1", applicant=APPLICANT)
    lines: list[Any] = [
        received,  # accepted
        received,  # duplicate
        ev.received("HS-2", applicant=APPLICANT, channel="online"),  # invalid
        ev.received("HS-1", applicant=APPLICANT),  # conflict: received twice
        NAME,  # malformed: not an object
        ev.copy("SC-1"),  # accepted
    ]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(
        "\n".join(msgspec.json.encode(line).decode() for line in lines) + "\n", encoding="utf-8"
    )
    port = free_port()
    serve = LienthongProcess([*LIENTHONG, "serve", "--port", str(port)], subprocess_env)
    try:
        serve.wait_for("lienthong serving on")
        result = subprocess.run(
            [
                *LIENTHONG,
                "submit",
                str(events_file),
                "--unit",
                ev.WARD,
                "--batch",
                "3",
                "--nats-url",
                f"nats://127.0.0.1:{port}",
            ],
            env=subprocess_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        code = serve.stop()
    assert code == 0, serve.stderr

    # `lienthong submit`: a summary, then each refused line with its code; exit 1 when refused.
    assert result.returncode == 1, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == (
        "6 events: 2 accepted, 1 duplicates, 3 refused (conflict: 1, invalid: 1, malformed: 1)"
    )
    assert out[1].startswith(f"  line 3 {lines[2]['event_id']}: invalid [service_level]: ")
    assert out[2].startswith(f"  line 4 {lines[3]['event_id']}: conflict")
    assert out[3].startswith("  line 5 ?: malformed")
    assert len(out) == 4

    # `lienthong serve`: JSON lines, one `submit.batch` per batch, no personal data anywhere.
    assert NAME not in serve.stderr
    assert ID_NUMBER not in serve.stderr
    assert NAME.encode("unicode_escape").decode() not in serve.stderr
    records = [msgspec.json.decode(line) for line in serve.lines if line.lstrip().startswith("{")]
    batches = [r for r in records if r.get("event") == "submit.batch"]
    assert [
        (r["unit"], r["events"], r["accepted"], r["duplicates"], r["refused"]) for r in batches
    ] == [
        (ev.WARD, 3, 1, 1, {"invalid": 1}),
        # The line that is not an object is refused by `lienthong submit` itself, never sent.
        (ev.WARD, 2, 1, 0, {"conflict": 1}),
    ]
    assert all(isinstance(r["ms"], float | int) for r in batches)
    assert all(r["level"] == "info" for r in batches)
    assert "Traceback" not in serve.stderr
