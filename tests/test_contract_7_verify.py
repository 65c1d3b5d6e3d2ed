"""CONTRACT section 7: verify that the log has not been altered, against the sealer's seals.

Tampering is done the way JetStream allows it even with deletes and purges denied: the stream
is deleted and recreated, and its events published again, changed or not.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from consumers.audit.log_chain import GENESIS, Chain
from consumers.audit.sealer import Sealer, SealerSettings
from consumers.audit.verify import verify
from gateway.service import Gateway
from lienthong.embedded import NatsServer
from plumbing import connection
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import EVENTS_STREAM, provision
from tests import events as ev
from tests.helpers import submit

NEVER = SealerSettings(interval_seconds=3600)  # seals only when a test says so


@pytest.fixture
async def sealer(gateway: Gateway, nats_settings: NatsSettings) -> AsyncIterator[Sealer]:
    client = await connection.connect(nats_settings)
    s = Sealer(client, NEVER)
    await s.start()
    yield s
    await s.abort()
    await client.close()


async def lifecycle(client: Client, dossier_id: str) -> None:
    replies = await submit(
        client,
        ev.WARD,
        [ev.received(dossier_id), ev.dossier_event("resolved", dossier_id, outcome="approved")],
    )
    assert all(r["ok"] for r in replies)


async def recreate_log(client: Client, change: int | None = None, keep: int | None = None) -> None:
    """Delete ONESTOP_EVENTS and publish its events again: the `change`-th (1-based) with other
    bytes, and only the first `keep` of them, if given."""
    js = client.jetstream()
    total = (await js.stream_info(EVENTS_STREAM)).state.messages
    sub = await js.subscribe(
        "onestop.events.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    stored = [await sub.next_msg(timeout=10) for _ in range(total)]
    await sub.unsubscribe()
    await js.delete_stream(EVENTS_STREAM)
    await provision(client, StreamSettings())
    for n, msg in enumerate(stored[:keep], 1):
        data = msg.data.replace(b'"approved"', b'"refused"') if n == change else msg.data
        await js.publish(msg.subject, data, headers=dict(msg.headers or {}))


async def test_an_untouched_log_matches_every_seal(sealer: Sealer, client: Client) -> None:
    await lifecycle(client, "HS-1")
    first = await sealer.wait_until_current()
    await lifecycle(client, "HS-2")
    second = await sealer.wait_until_current()
    assert first is not None
    assert second is not None
    assert (first.seq, second.seq) == (2, 4)
    await lifecycle(client, "HS-3")  # not sealed yet
    result = await verify(client)
    assert result.intact
    assert (result.seals, result.verified_seq, result.unsealed, result.events) == (2, 4, 2, 6)


async def test_a_log_recreated_with_one_event_changed_matches_no_seal(
    sealer: Sealer, client: Client
) -> None:
    await lifecycle(client, "HS-1")
    await sealer.wait_until_current()
    await lifecycle(client, "HS-2")
    await sealer.wait_until_current()
    await recreate_log(client, change=4)  # HS-2's resolution, sealed by the second seal
    result = await verify(client)
    assert not result.intact
    # Recreated, every event has a new stored time: already the first seal no longer matches.
    assert result.broken_seal_seq == 2
    assert result.verified_seq == 0


async def test_a_log_that_lost_its_tail_breaks_the_seal_that_covered_it(
    sealer: Sealer, client: Client
) -> None:
    await lifecycle(client, "HS-1")
    await sealer.wait_until_current()
    await recreate_log(client, keep=1)
    result = await verify(client)
    assert not result.intact
    assert result.broken_seal_seq == 2
    assert result.last_seq == 1


async def test_a_restarted_sealer_carries_the_chain_on_from_the_last_seal(
    gateway: Gateway, nats_settings: NatsSettings, client: Client
) -> None:
    for round_ in range(2):
        sealer_client = await connection.connect(nats_settings)
        s = Sealer(sealer_client, NEVER)
        await s.start()
        await lifecycle(client, f"HS-{round_}")
        assert await s.wait_until_current() is not None
        await s.stop()
        await sealer_client.close()
    result = await verify(client)
    assert result.intact
    assert (result.seals, result.verified_seq, result.unsealed) == (2, 4, 0)


def head(
    seq: int = 7,
    subject: str = "onestop.events.21550.dossier.HS",
    stored_ns: int = 1_700_000_000_000_000_000,
    headers: dict[str, str] | None = None,
    data: bytes = b"{}",
) -> bytes:
    chain = Chain()
    chain.add(seq, subject, stored_ns, headers if headers is not None else {"A": "1"}, data)
    return chain.head


def test_the_chain_covers_sequence_subject_stored_time_headers_and_data() -> None:
    assert head() == head()
    assert head() != GENESIS
    variants = {
        head(),
        head(seq=8),
        head(subject="onestop.events.21550.dossier.HT"),
        head(stored_ns=1),
        head(headers={"A": "2"}),
        head(data=b"[]"),
    }
    assert len(variants) == 6


def run_verify(server: NatsServer, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong.cli", "verify", "--nats-url", server.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_lienthong_verify_says_intact_or_altered_and_exits_accordingly(
    sealer: Sealer, client: Client, nats_server: NatsServer, subprocess_env: dict[str, str]
) -> None:
    await lifecycle(client, "HS-1")
    await sealer.wait_until_current()
    await lifecycle(client, "HS-2")  # after the seal
    intact = await asyncio.to_thread(run_verify, nats_server, subprocess_env)
    assert intact.returncode == 0, intact.stderr
    assert "4 events in the log (last sequence 4), 1 seals checked" in intact.stdout
    assert "intact: the log matches every seal, up to sequence 2" in intact.stdout
    assert "2 events after the last seal are not sealed yet" in intact.stdout
    await recreate_log(client, change=2)
    altered = await asyncio.to_thread(run_verify, nats_server, subprocess_env)
    assert altered.returncode == 1
    assert "ALTERED: the log no longer matches the seal at sequence 2" in altered.stdout
