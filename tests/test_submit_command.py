"""`lienthong submit FILE.jsonl --unit U`: one event per line, each line answered on its own.

The command runs as a process against the test's nats-server and an in-process gateway; the
batching it relies on (`lienthong.client.submit_all`) is also checked directly.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from structlog.testing import capture_logs

from gateway.service import Gateway
from gateway.submit import MAX_BYTES, MAX_EVENTS
from lienthong.client import BATCH_BYTES, batches, submit_all, submit_batch
from lienthong.embedded import NatsServer
from schemas.replies import Accepted, Refused
from tests import events as ev
from tests.helpers import log_size


async def run_submit(
    nats_server: NatsServer, env: dict[str, str], path: Path, *extra: str
) -> tuple[int, list[str], str]:
    """Run `lienthong submit` (without blocking the loop the gateway serves on)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lienthong.cli",
        "submit",
        str(path),
        "--unit",
        ev.WARD,
        "--nats-url",
        nats_server.url,
        *extra,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode().splitlines(), err.decode()


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def batch_sizes(logged: Sequence[Mapping[str, Any]]) -> list[int]:
    return [e["events"] for e in logged if e["event"] == "submit.batch"]


async def test_each_bad_line_is_refused_alone_and_the_rest_answered_in_line_order(
    gateway: Gateway, client: Client, nats_server: NatsServer, subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    good = [ev.copy(f"SC-{i}") for i in range(6)]
    unknown = ev.dossier_event("resolved", "HS-9")
    lines = [
        ev.wire(good[0]),
        b'{"type": "copy.certified", "event_id": ',  # 2: not JSON
        ev.wire(good[1]),
        ev.wire(good[2]) + b"," + ev.wire(good[3]),  # 4: two objects on one line
        b"",  # 5: blank, skipped
        b"42",  # 6: JSON, not an object
        ev.wire([good[4]]),  # 7: an array
        b'{"type": "copy.certified", "event_id": "\xff"}',  # 8: not UTF-8
        ev.wire(unknown),  # 9: refused by the gateway
        ev.wire(good[5]),
    ]
    path = write_lines(tmp_path / "events.jsonl", lines)
    with capture_logs() as logged:
        code, out, err = await run_submit(nats_server, subprocess_env, path, "--batch", "2")
    assert code == 1, err
    assert "Traceback" not in err
    assert out[0] == (
        "9 events: 3 accepted, 0 duplicates, 6 refused (malformed: 5, unknown_entity: 1)"
    )
    assert [line.split(":")[0] for line in out[1:]] == [
        "  line 2 ?",
        "  line 4 ?",
        "  line 6 ?",
        "  line 7 ?",
        "  line 8 ?",
        f"  line 9 {unknown['event_id']}",
    ]
    assert all(": malformed: " in line for line in out[1:6]), out
    assert "one event" in out[2]
    # Nothing of the refused lines was sent: the gateway saw the four others, two by two.
    assert batch_sizes(logged) == [2, 2]
    assert await log_size(client) == 3


async def test_replies_stay_with_their_lines(
    gateway: Gateway, client: Client, nats_server: NatsServer, subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    events = [ev.copy("SC-1"), ev.copy("SC-2", electronic="yes"), ev.document("VB-1")]
    events += [ev.document("VB-1"), ev.copy("SC-3", unit=ev.OTHER_WARD)]
    lines = [ev.wire(events[0]), b"{}{}", *(ev.wire(e) for e in events[1:])]
    path = write_lines(tmp_path / "events.jsonl", lines)
    code, out, err = await run_submit(nats_server, subprocess_env, path)
    assert code == 1, err
    assert out[0].startswith("6 events: 2 accepted, 0 duplicates, 4 refused")
    assert [line.split(" [")[0].split(": ")[:2] for line in out[1:]] == [
        ["  line 2 ?", "malformed"],
        [f"  line 3 {events[1]['event_id']}", "invalid"],
        [f"  line 5 {events[3]['event_id']}", "conflict"],
        [f"  line 6 {events[4]['event_id']}", "unit_mismatch"],
    ]


async def test_a_file_too_large_for_one_request_is_sent_in_batches_under_the_limit(
    gateway: Gateway, client: Client, nats_server: NatsServer, subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    """1,001 events of 6 kB: by count alone, a first batch of 1,000 would be 6 MB."""
    note = "ữ" * 2000  # the longest note, 3 bytes a letter
    events = [ev.received("HS-1")]
    events += [ev.dossier_event("supplement_requested", "HS-1", note=note) for _ in range(1000)]
    lines = [ev.wire(e) for e in events]
    assert sum(map(len, lines[:MAX_EVENTS])) > MAX_BYTES
    path = write_lines(tmp_path / "events.jsonl", lines)
    with capture_logs() as logged:
        code, out, err = await run_submit(nats_server, subprocess_env, path, "--batch", "5000")
    assert code == 0, [*out[:5], err]
    assert out == ["1001 events: 1001 accepted, 0 duplicates, 0 refused"]
    sizes = batch_sizes(logged)
    assert sum(sizes) == 1001
    assert max(sizes) <= BATCH_BYTES // len(lines[1]) + 1  # the smaller receipt in the first
    assert await log_size(client) == 1001


def test_batches_are_cut_by_count_and_by_bytes() -> None:
    events = [b"x" * n for n in (10, 10, 10, 50, 10, 10, 10, 10)]
    everything = range(len(events))
    assert list(batches(events, everything, 3, 1000)) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    # [a,b,c] is 2 + 10 + 1 + 10 + 1 + 10 = 34 bytes
    assert list(batches(events, everything, 8, 34)) == [[0, 1, 2], [3], [4, 5, 6], [7]]
    assert list(batches(events, everything, 8, 33)) == [[0, 1], [2], [3], [4, 5], [6, 7]]
    assert list(batches(events, [1, 3, 7], 8, 10)) == [[1], [3], [7]]  # a large one goes alone
    assert list(batches(events, [], 8, 10)) == []


async def test_batches_respect_the_nats_servers_max_payload(
    gateway: Gateway, client: Client
) -> None:
    client._max_payload = 2000  # as a server configured with a smaller limit would announce
    events = [ev.wire(ev.copy(f"SC-{i}")) for i in range(30)]
    replies = await submit_all(client, ev.WARD, events, batch_size=1000)
    assert all(isinstance(r, Accepted) and not r.duplicate for r in replies), replies
    # one larger than the server accepts is refused here, with the others still answered
    big = ev.wire(ev.copy("SC-big", padding="x" * 3000))
    replies = await submit_all(client, ev.WARD, [big, events[0]])
    assert isinstance(replies[0], Refused)
    assert replies[0].error.code == "malformed"
    assert isinstance(replies[1], Accepted)
    assert replies[1].duplicate
    # and a request nats-py itself refuses for its size is a refusal, not an exception
    [refused] = await submit_batch(client, ev.WARD, [big])
    assert isinstance(refused, Refused)
    assert refused.error.code == "malformed"
    assert await log_size(client) == 30


@pytest.mark.parametrize(
    "line", [b"42", b"[{}]", b"{} {}", b"{", b"", b'"x"', b'{"a": "\xc3"}', b"{}\x00"]
)
async def test_a_line_that_is_not_one_object_is_never_sent(
    gateway: Gateway, client: Client, line: bytes
) -> None:
    with capture_logs() as logged:
        [reply] = await submit_all(client, ev.WARD, [line])
    assert isinstance(reply, Refused)
    assert reply.error.code == "malformed"
    assert reply.event_id is None
    assert batch_sizes(logged) == []
    assert msgspec.json.encode(reply)  # a plain reply the command prints
