"""CONTRACT section 6 end to end, over random event streams: what the projector publishes after
the gateway judged every event equals a literal reading of the contract over what was stored.

The streams (tests.report_reference) interleave dossiers, documents and copies of three units,
come late and out of order, straddle month ends in both offsets, and break the lifecycle now and
then (the gateway refuses those); some events are resent, and must change nothing.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.reports import report_store
from consumers.reports.projector import ReportProjector
from gateway.service import Gateway
from lienthong.embedded import NatsServer
from plumbing import connection
from plumbing.settings import NatsSettings, StreamSettings
from schemas.events import Event
from schemas.registry import Registry
from tests.helpers import FAST_PROJECTOR, submit
from tests.report_reference import Reference, streams


async def project(
    store: Path,
    events: list[Event],
    batch_sizes: list[int],
    pauses: set[int],
    resends: list[int],
) -> None:
    registry = Registry.load()
    with NatsServer(store) as server:
        settings = NatsSettings(servers=(server.url,))
        gateway = Gateway(settings, StreamSettings(), registry)
        await gateway.start()
        client = await connection.connect(settings, service=False)
        projector_client = await connection.connect(settings)
        projector = ReportProjector(projector_client, registry, FAST_PROJECTOR)
        await projector.start()
        try:
            stored: dict[int, Event] = {}
            seq_of: dict[str, int] = {}
            # Each unit's system submits its own events, in batches, in the stream's order.
            sizes = itertools.cycle(batch_sizes)
            runs = [list(g) for _, g in itertools.groupby(events, key=lambda e: e.unit)]
            batches = itertools.count()
            for run in runs:
                while run:
                    if next(batches) in pauses:  # reports published mid-stream, then revised
                        await projector.wait_until_current()
                    n = next(sizes)
                    batch, run = run[:n], run[n:]
                    replies = await submit(client, batch[0].unit, msgspec.to_builtins(batch))
                    for event, reply in zip(batch, replies, strict=True):
                        if reply["ok"]:
                            assert not reply["duplicate"]
                            stored[reply["seq"]] = event
                            seq_of[event.event_id] = reply["seq"]
            for k in resends:  # resent, however late: the same answer, nothing stored again
                event = events[k % len(events)]
                reply = await submit(client, event.unit, msgspec.to_builtins(event))
                if event.event_id in seq_of:
                    assert reply == {
                        "ok": True,
                        "seq": seq_of[event.event_id],
                        "duplicate": True,
                        "event_id": event.event_id,
                    }
                elif reply["ok"]:  # refused before, acceptable now (its dossier moved on)
                    stored[reply["seq"]] = event
                    seq_of[event.event_id] = reply["seq"]
            await projector.wait_until_current()
            reference = Reference(
                [(stored[seq], registry.report_units(stored[seq].unit)) for seq in sorted(stored)]
            )
            published = await report_store.current_reports(client)
            expected = {(u, p) for u in reference.units() for p in reference.periods(u)}
            assert set(published) == expected
            for (unit, period), current in published.items():
                assert current.report.final  # 2021 has ended
                figures = msgspec.to_builtins(current.report.figures)
                assert figures == reference.figures(unit, period), (unit, period)
        finally:
            await projector.stop()
            await projector_client.close()
            await client.close()
            await gateway.stop()


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(
    events=streams(),
    batch_sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    pauses=st.sets(st.integers(1, 12), max_size=3),
    resends=st.lists(st.integers(0, 1000), max_size=6),
)
def test_published_reports_equal_a_literal_reading_of_what_was_stored(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[Event],
    batch_sizes: list[int],
    pauses: set[int],
    resends: list[int],
) -> None:
    store = tmp_path_factory.mktemp("nats")
    asyncio.run(project(store, events, batch_sizes, pauses, resends))
