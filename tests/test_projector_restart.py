"""The projector survives being killed (the process, SIGKILL) at any point mid-stream, and a
report the log could not store for a while."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import BinaryIO

import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from consumers.audit.rebuild import rebuild
from consumers.reports import report_store
from consumers.reports.projector import ProjectorSettings, ReportProjector
from gateway.service import Gateway
from lienthong.client import submit_batch
from lienthong.demo.traffic import generate
from lienthong.embedded import NatsServer
from plumbing import connection
from plumbing.checkpoint import BUCKET as CHECKPOINT_BUCKET
from plumbing.checkpoint import CheckpointStore
from plumbing.errors import LogUnavailable
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings
from plumbing.streams import EVENTS_STREAM, REPORTS_STREAM
from schemas.registry import Registry
from schemas.report import Report
from tests import events as ev
from tests.helpers import FAST_PROJECTOR, submit


def projector_process(url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        return _start(url, env, stderr)


def _start(url: str, env: dict[str, str], stderr: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lienthong.cli", "serve", "--roles", "projector"],
        env={
            **env,
            "LIENTHONG_NATS_URL": url,
            "LIENTHONG_PROJECTOR_COALESCE_SECONDS": "0.2",
            "LIENTHONG_PROJECTOR_CHECKPOINT_EVENTS": "1000",
            "LIENTHONG_PROJECTOR_CHECKPOINT_SECONDS": "0.5",
            # The killed process's lease expires soon, so the restarted one takes over soon.
            "LIENTHONG_PROJECTOR_LEASE_TTL": "2",
        },
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


async def projected_up_to(client: Client) -> int:
    try:
        info = await client.jetstream().consumer_info(EVENTS_STREAM, "reports-projector")
    except Exception:
        return 0
    floor: int = info.ack_floor.stream_seq if info.ack_floor else 0
    return floor


async def all_revisions(client: Client) -> dict[str, list[int]]:
    js = client.jetstream()
    info = await js.stream_info(REPORTS_STREAM)
    out: dict[str, list[int]] = defaultdict(list)
    sub = await js.subscribe(
        "onestop.reports.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    for _ in range(info.state.messages):
        msg = await sub.next_msg(timeout=10)
        out[msg.subject].append(msgspec.json.decode(msg.data, type=Report).revision)
    await sub.unsubscribe()
    return out


@pytest.mark.slow
async def test_projector_killed_mid_stream_resumes_without_counting_twice_or_skipping(
    nats_server: NatsServer,
    nats_settings: NatsSettings,
    registry: Registry,
    gateway: Gateway,
    client: Client,
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    traffic = generate(2021)
    batches = [
        (unit, events[i : i + 200])
        for unit, events in traffic.events_by_unit.items()
        for i in range(0, len(events), 200)
    ]
    # Interleave units, keep each unit's own order: round-robin over the units' batch lists.
    per_unit: dict[str, list[list[bytes]]] = defaultdict(list)
    for unit, chunk in batches:
        per_unit[unit].append(chunk)
    order = [
        (unit, chunks[k])
        for k in range(max(len(c) for c in per_unit.values()))
        for unit, chunks in per_unit.items()
        if k < len(chunks)
    ]
    thirds = [
        order[: len(order) // 3],
        order[len(order) // 3 : 2 * len(order) // 3],
        order[2 * len(order) // 3 :],
    ]
    log = tmp_path / "projector.log"

    async def play(part: list[tuple[str, list[bytes]]]) -> None:
        for unit, chunk in part:
            replies = await submit_batch(client, unit, chunk)
            assert all(r.ok for r in replies), [r for r in replies if not r.ok][:3]

    first = projector_process(nats_server.url, subprocess_env, log)
    await play(thirds[0])
    checkpoints = CheckpointStore(client, "reports-projector")
    for _ in range(400):  # until it has projected and checkpointed part of the log
        checkpoint = await checkpoints.load() if await projected_up_to(client) > 2000 else None
        if checkpoint is not None and checkpoint.seq > 0:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the projector never checkpointed")
    first.kill()  # SIGKILL: no flush, no final checkpoint
    first.wait()
    assert first.returncode == -9
    await play(thirds[1])  # events arrive while no projector runs
    second = projector_process(nats_server.url, subprocess_env, log)
    await play(thirds[2])
    last_seq = (await client.jetstream().stream_info(EVENTS_STREAM)).state.last_seq
    js = JetStream(client, 5)
    for _ in range(600):
        city = await report_store.current_report(js, "540", "2021-04")
        if (
            await projected_up_to(client) >= last_seq
            and city is not None
            and city.report.figures == traffic.expected_city_april
        ):
            break
        await asyncio.sleep(0.1)
    second.terminate()
    assert second.wait(30) == 0, log.read_text()[-2000:]

    city = await report_store.current_report(js, "540", "2021-04")
    assert city is not None
    assert city.report.figures == traffic.expected_city_april
    # No revision published twice, none skipped: every subject's revisions are 1, 2, ..., n.
    for subject, revisions in (await all_revisions(client)).items():
        assert revisions == list(range(1, len(revisions) + 1)), subject
    # And the figures equal a rebuild from the log alone.
    rebuilt = (await rebuild(client, registry)).book
    for unit in rebuilt.units():
        for period in rebuilt.periods(unit):
            published = await report_store.current_report(js, unit, period)
            assert published is not None, (unit, period)
            assert published.report.figures == rebuilt.figures(unit, period), (unit, period)


async def test_changes_checkpointed_before_they_were_published_are_published_after_a_restart(
    gateway: Gateway, nats_settings: NatsSettings, registry: Registry, client: Client
) -> None:
    # A projector that applies and checkpoints but dies before its next flush.
    await submit(client, ev.WARD, [ev.received("K-1"), ev.received("K-2")])
    first_client = await connection.connect(nats_settings)
    never_flushes = ProjectorSettings(coalesce_seconds=3600)
    first = ReportProjector(first_client, registry, never_flushes)
    await first.start()
    last_seq = (await client.jetstream().stream_info(EVENTS_STREAM)).state.last_seq
    for _ in range(200):
        if first.seq >= last_seq:
            break
        await asyncio.sleep(0.05)
    await first.checkpoint()
    await first._runner.abort()  # killed: no flush, no final checkpoint
    await first_client.close()
    assert await report_store.current_report(JetStream(client, 5), ev.WARD, "2021-04") is None

    second_client = await connection.connect(nats_settings)
    second = ReportProjector(second_client, registry, FAST_PROJECTOR)
    await second.start()
    await second.wait_until_current()
    await second.stop()
    await second_client.close()
    published = await report_store.current_report(JetStream(client, 5), ev.WARD, "2021-04")
    assert published is not None
    assert published.report.dossiers.received.new == 2
    assert published.report.revision == 1


async def test_a_report_the_log_could_not_store_is_published_at_the_next_flush(
    projector: ReportProjector, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_publish = report_store.publish
    failures = [LogUnavailable("the event log did not confirm the write in time")]

    async def publish_failing_once(js: JetStream, report: Report, expected_seq: int) -> int:
        if failures:
            raise failures.pop()
        return await real_publish(js, report, expected_seq)

    monkeypatch.setattr(report_store, "publish", publish_failing_once)
    await submit(client, ev.WARD, ev.received("U-1"))
    for _ in range(100):
        found = await report_store.current_report(JetStream(client, 5), ev.WARD, "2021-04")
        if found is not None:
            break
        await asyncio.sleep(0.05)
    assert not failures
    assert found is not None
    assert found.report.dossiers.received.new == 1


async def test_a_rebuild_from_empty_publishes_no_half_counted_revision(
    gateway: Gateway,
    nats_settings: NatsSettings,
    registry: Registry,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await submit(client, ev.WARD, [ev.received(f"E-{i}") for i in range(300)])
    first_client = await connection.connect(nats_settings)
    first = ReportProjector(first_client, registry, FAST_PROJECTOR)
    await first.start()
    await first.wait_until_current()
    await first.stop()
    await first_client.close()
    js = JetStream(client, 5)
    published = await report_store.current_report(js, ev.WARD, "2021-04")
    assert published is not None
    # The checkpoint lost: the next projector starts from an empty book, and reads slowly.
    checkpoints = await client.jetstream().object_store(CHECKPOINT_BUCKET)
    await checkpoints.delete("reports-projector")
    real_apply = ReportProjector._apply

    def slow_apply(self: ReportProjector, msg: Msg, seq: int) -> None:
        time.sleep(0.003)
        real_apply(self, msg, seq)

    monkeypatch.setattr(ReportProjector, "_apply", slow_apply)
    second_client = await connection.connect(nats_settings)
    second = ReportProjector(second_client, registry, FAST_PROJECTOR)
    await second.start()
    await second.wait_until_current()
    await second.stop()
    await second_client.close()
    current = await report_store.current_report(js, ev.WARD, "2021-04")
    assert current == published  # same figures: no new revision, least of all a smaller one
