"""CONTRACT section 7, verify that the log has not been altered, against whoever controls the
city's servers: the province keeps its own copy of the seals (a JetStream mirror across a leaf
node, on its own nats-server), and `lienthong verify --witness` holds the log against it.

Two real nats-servers on loopback: the city's (JetStream domain `city`, accepting leaf nodes)
and the province's (domain `province`, a leaf of the city's that does not import its own
domain's API), as deploy/witness/ configures them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from consumers.audit.sealer import Sealer, SealerSettings
from consumers.audit.verify import first_disagreement, read_seals, verify
from consumers.audit.witness import WITNESS_STREAM, keep_witness, witness_config
from gateway.service import Gateway
from lienthong.embedded import NatsServer
from plumbing import connection
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import EVENTS_STREAM, SEALS_STREAM, provision, seals_config
from schemas.registry import Registry
from tests import events as ev
from tests.helpers import free_port, submit, until

NEVER = SealerSettings(interval_seconds=3600)  # seals only when the test says so
CITY_DOMAIN = "city"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[NatsServer, NatsServer]]:
    leaf = free_port()
    city = NatsServer(
        tmp_path / "city",
        name="city",
        domain=CITY_DOMAIN,
        extra_config=f"leafnodes {{ listen: 127.0.0.1:{leaf} }}\n",
    )
    # As deploy/witness/province.conf: the leaf connection brings the city's seals in, and lets
    # nothing from the city reach the province's own JetStream API.
    province = NatsServer(
        tmp_path / "province",
        name="province",
        domain="province",
        extra_config=(
            f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{leaf}", '
            'deny_imports: ["$JS.province.API.>", "$JS.API.>"] } ] }\n'
        ),
    )
    with city, province:
        yield city, province


@pytest.fixture
async def city_gateway(
    servers: tuple[NatsServer, NatsServer], registry: Registry
) -> AsyncIterator[Gateway]:
    g = Gateway(
        NatsSettings(servers=(servers[0].url,), request_timeout=2.0), StreamSettings(), registry
    )
    await g.start()
    yield g
    await g.stop()


async def sealed_lifecycle(city: Client, sealer: Sealer, dossier_id: str) -> None:
    replies = await submit(
        city,
        ev.WARD,
        [ev.received(dossier_id), ev.dossier_event("resolved", dossier_id, outcome="approved")],
    )
    assert all(r["ok"] for r in replies)
    assert await sealer.wait_until_current() is not None


async def rewrite_log_and_seals(city: Client, url: str) -> None:
    """What an admin of the city's servers can do: delete and recreate the event log with the
    last event changed, delete and recreate the seals, and seal the rewritten log anew."""
    js = city.jetstream()
    total = (await js.stream_info(EVENTS_STREAM)).state.messages
    sub = await js.subscribe(
        "onestop.events.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    stored = [await sub.next_msg(timeout=10) for _ in range(total)]
    await sub.unsubscribe()
    await js.delete_stream(EVENTS_STREAM)
    await js.delete_stream(SEALS_STREAM)
    await provision(city, StreamSettings())
    for n, msg in enumerate(stored, 1):
        data = msg.data.replace(b'"approved"', b'"refused"') if n == total else msg.data
        await js.publish(msg.subject, data, headers=dict(msg.headers or {}))
    forger_client = await connection.connect(NatsSettings(servers=(url,)))
    forger = Sealer(forger_client, NEVER)
    await forger.start()
    await forger.wait_until_current()
    await forger.abort()
    await forger_client.close()


def run_verify(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lienthong.cli", "verify", "--nats-url", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_log_and_seals_rewritten_together_pass_the_citys_seals_but_not_the_witness(
    servers: tuple[NatsServer, NatsServer], city_gateway: Gateway
) -> None:
    city_server, province_server = servers
    city = await nats.connect(city_server.url)
    province = await nats.connect(province_server.url)
    sealer_client = await connection.connect(NatsSettings(servers=(city_server.url,)))
    sealer = Sealer(sealer_client, NEVER)
    await sealer.start()
    try:
        witness = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "lienthong.cli",
                "witness",
                "--city-domain",
                CITY_DOMAIN,
                "--nats-url",
                province_server.url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert witness.returncode == 0, witness.stderr
        assert f"witness stream {WITNESS_STREAM} created" in witness.stdout
        assert not await keep_witness(province, CITY_DOMAIN)  # a second time: left as it is
        await sealed_lifecycle(city, sealer, "HS-1")  # seal at sequence 2
        await sealed_lifecycle(city, sealer, "HS-2")  # seal at sequence 4

        async def witnessed() -> bool:
            info = await province.jetstream().stream_info(WITNESS_STREAM)
            return bool(info.state.messages == 2)

        await until(witnessed, what="the province's copy of both seals")
        assert (await verify(city, province, WITNESS_STREAM)).intact

        # The city cannot reach the province's copy to rewrite it too.
        with pytest.raises(nats.errors.NoRespondersError):
            await city.request(f"$JS.province.API.STREAM.DELETE.{WITNESS_STREAM}", b"", timeout=2)

        await sealer.abort()
        await rewrite_log_and_seals(city, city_server.url)

        own = await verify(city)
        assert own.intact, "the rewritten seals vouch for the rewritten log"
        against_witness = await verify(city, province, WITNESS_STREAM)
        assert not against_witness.intact
        # Recreated, every event has a new stored time: the first seal already fails.
        assert against_witness.broken_seal_seq == 2
        assert against_witness.verified_seq == 0
        own_seals, _ = await read_seals(city)
        witness_seals, _ = await read_seals(province, WITNESS_STREAM)
        assert first_disagreement(own_seals, witness_seals) == 2

        by_city = await asyncio.to_thread(run_verify, city_server.url)
        assert by_city.returncode == 0, by_city.stdout + by_city.stderr
        by_witness = await asyncio.to_thread(
            run_verify, city_server.url, "--witness", province_server.url
        )
        assert by_witness.returncode == 1, by_witness.stdout + by_witness.stderr
        assert (
            "ALTERED: the log no longer matches the witness's seal at sequence 2"
            in by_witness.stdout
        )
        assert "the city's own seals differ from the witness's from the seal at sequence 2" in (
            by_witness.stdout
        )
    finally:
        await sealer.abort()
        await sealer_client.close()
        await city.close()
        await province.close()


def test_the_witness_mirrors_the_citys_seals_through_its_domain_and_keeps_every_one() -> None:
    config = witness_config("city-540")
    assert config.mirror is not None
    assert config.mirror.name == SEALS_STREAM
    assert config.mirror.external is not None
    assert config.mirror.external.api == "$JS.city-540.API"
    assert config.deny_delete
    assert config.deny_purge
    assert config.subjects is None  # a mirror has none: it keeps the city's own
    assert seals_config(StreamSettings()).subjects == ["onestop.seals"]
