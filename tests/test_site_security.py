"""Issues 10 and 13 together: a ward site under security, every server run from the files
`lienthong security init` wrote. The city's server runs `nats-server.conf`; the site's,
`leaf/<ward>.conf` (its own JetStream domain, its leaf connection as the site party, its own
users), run by `lienthong serve --security DIR --site <ward>` as the site's own gateway party.

What a site needs crosses its leaf connection: the city's relays of its units' requests, the
city's mirror of its log (consumer, deliveries, flow control, API replies), the lag probes.
Nothing else does: the site party is refused another unit's submissions, the city's streams,
another site's relays and domain, and any API call on its own log that is not the mirror's.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import nats.errors
import pytest
import structlog

from consumers.sites.status import site_lags, site_last_seq
from gateway.service import Gateway
from gateway.site_catchup import SiteCatchUp
from lienthong import cli
from lienthong.embedded import NatsServer
from lienthong.parties import load_parties, site_gateway_party, site_party
from lienthong.security import Layout, init
from plumbing import connection
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import EVENTS_STREAM
from schemas.registry import Registry, RegistryFile
from tests import events as ev
from tests.helpers import (
    LienthongProcess,
    PartyConnection,
    SecureDeployment,
    error_of,
    free_port,
    log_subjects,
    submit,
    until,
)

SITE, OTHER = ev.WARD, ev.OTHER_WARD
LIENTHONG = [sys.executable, "-m", "lienthong.cli"]
LINK = 60.0
"""Bound on the leaf connection coming up and the city's mirror taking a first event (the
site reconnects every 5 s; the mirror's consumer is set up as soon as the link is up)."""


@pytest.fixture(autouse=True)
def _logs_unbound() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    connection.PERMISSION_DENIED.clear()


def site_registry(path: Path) -> Path:
    """The default registry with one ward marked as its own site."""
    default = Registry.load()
    units = [msgspec.structs.replace(default[c], site=c == SITE) for c in default.codes()]
    path.write_bytes(msgspec.json.encode(RegistryFile(units=units)))
    return path


class SecuredSite:
    """`security init`'s folder, the city's server from it, and the site's files."""

    def __init__(self, tmp_path: Path) -> None:
        self.registry_file = site_registry(tmp_path / "units.json")
        self.registry = Registry.load(self.registry_file)
        self.folder = tmp_path / "security"
        self.site_port = free_port()
        init(
            self.folder,
            self.registry,
            Layout(
                listen_host="127.0.0.1",
                port=free_port(),
                leaf_port=free_port(),
                site_port=self.site_port,
            ),
        )
        self.city = NatsServer(self.folder / "data", config_file=self.folder / "nats-server.conf")
        self.deployment = SecureDeployment(self.folder, self.city, tls=False)

    @property
    def site_url(self) -> str:
        return f"nats://127.0.0.1:{self.site_port}"

    def at_site(self, party: str) -> NatsSettings:
        return msgspec.structs.replace(self.deployment.settings(party), servers=(self.site_url,))

    def site_password(self) -> str:
        return (self.folder / "creds" / f"{site_party(SITE)}.password").read_text().strip()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredSite]:
    world = SecuredSite(tmp_path)
    world.city.start()
    try:
        yield world
    finally:
        world.city.stop()


@contextlib.asynccontextmanager
async def city_side(world: SecuredSite) -> AsyncIterator[None]:
    """The city's gateway and its catch-up of the site's log, both as the gateway party."""
    gateway = Gateway(world.deployment.settings("gateway"), StreamSettings(), world.registry)
    await gateway.start()
    client = await connection.connect(world.deployment.settings("gateway"))
    catchup = SiteCatchUp(client, world.registry)
    await catchup.start()
    try:
        yield
    finally:
        await catchup.stop()
        await client.close()
        await gateway.stop()


@contextlib.contextmanager
def site_serving(world: SecuredSite, env: dict[str, str]) -> Iterator[LienthongProcess]:
    """`lienthong serve --security DIR --site <ward>`: the site's server and its gateway."""
    serve = LienthongProcess(
        [*LIENTHONG, "serve", "--security", str(world.folder), "--site", SITE,
         "--registry", str(world.registry_file)],
        env,
    )  # fmt: skip
    try:
        serve.wait_for("lienthong serving on")
        yield serve
    finally:
        assert serve.stop() == 0, serve.stderr


async def linked(world: SecuredSite) -> None:
    """Until the city reaches the site's JetStream across the leaf (as the operator)."""
    async with world.deployment.party("operator") as operator:

        async def answers() -> bool:
            return await site_last_seq(operator.client, SITE) is not None

        await until(answers, LINK, "the site's leaf connection")


async def test_a_site_under_security_serves_its_desks_and_the_city_takes_its_log_in(
    secured: SecuredSite, subprocess_env: dict[str, str]
) -> None:
    world = secured
    with site_serving(world, subprocess_env) as serve:
        assert f"authorization from {world.folder / 'leaf' / f'{SITE}.conf'}" in serve.stderr
        async with city_side(world):
            await linked(world)
            dossier = "HS-SEC-1"
            desk = await connection.connect(world.at_site(f"unit-{SITE}"), service=False)
            try:
                events = [
                    ev.received(dossier),
                    ev.dossier_event("transferred", dossier, interconnect=True),
                ]
                replies = await submit(desk, SITE, events)
                assert [r["ok"] for r in replies] == [True, True], replies
                assert replies[0]["seq"] == 1  # the site's own log
            finally:
                await desk.close()
            subject = f"onestop.events.{SITE}.dossier.{dossier}"
            async with world.deployment.party("operator") as operator:

                async def at_city(count: int) -> bool:
                    return (await log_subjects(operator.client)).get(subject) == count

                await until(lambda: at_city(2), LINK, "the site's events in the city's log")
                # The province's message for the site's dossier: relayed by the city's gateway
                # across the leaf to the site's, stored in the site's log, then the city's.
                result = {
                    "message_id": "P-result-1",
                    "kind": "result",
                    "unit": SITE,
                    "dossier_id": dossier,
                    "sent_at": "2021-04-09T09:00:00+07:00",
                    "body": {"outcome": "approved", "resolved_at": "2021-04-09T09:00:00+07:00"},
                }
                async with world.deployment.party(f"province-{ev.PROVINCE}") as province:
                    reply = await province.client.request(
                        f"onestop.inbound.{SITE}", msgspec.json.encode(result), timeout=30
                    )
                assert msgspec.json.decode(reply.data) == {"ok": True}
                await until(lambda: at_city(3), LINK, "the province's message at the city")
                # `lienthong status` as the operator: the site's log, asked across the leaf.
                lags = await site_lags(operator.client, world.registry)
                assert [(lag.site, lag.link, lag.held) for lag in lags] == [(SITE, "up", 0)]
            # And as the gateway party, as the projector asks it for the reports' pending_sites.
            async with world.deployment.party("gateway") as gateway:
                lags = await site_lags(gateway.client, world.registry)
                assert [(lag.site, lag.link, lag.held) for lag in lags] == [(SITE, "up", 0)]
            # The city's gateway never wrote the site's entities: every one came in by the
            # catch-up, after the site had stored it (3 events at the site, 3 at the city).
            site_client = await connection.connect(world.at_site("operator"), service=False)
            try:
                info = await site_client.jetstream().stream_info(EVENTS_STREAM)
                assert info.state.messages == 3
            finally:
                await site_client.close()


async def site_leaf_party(world: SecuredSite) -> PartyConnection:
    """The site party's own user on the city's client port: the rights its leaf connection has
    there, as a client holds them (publish: into the city's servers; subscribe: out of them)."""
    refused: list[str] = []
    settings = NatsSettings(
        servers=(world.city.url,), user=site_party(SITE), password=world.site_password()
    )
    client = await connection.connect(settings, service=False, on_denied=refused.append)
    return PartyConnection(client, refused)


async def test_the_site_party_is_refused_all_but_what_its_leaf_carries(
    secured: SecuredSite,
) -> None:
    party = await site_leaf_party(secured)
    try:
        for subject in (
            f"onestop.submit.{OTHER}",  # another unit's submissions
            f"onestop.submit.{SITE}",  # its own: the site's gateway answers them, not the city's
            f"onestop.inbound.{SITE}",
            f"onestop.events.{SITE}.dossier.HS-X",  # the city's log, around its intake
            f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}",  # reading the city's log
            f"$JS.API.STREAM.INFO.{EVENTS_STREAM}",
            "$JS.API.DIRECT.GET.ONESTOP_REPORTS.onestop.reports.21553.2021-04",
            f"$JS.API.STREAM.DELETE.ONESTOP_SITE_{SITE}",
            f"_INBOX_unit-{OTHER}.x",  # answering a desk's request in the city's name
            # The city's inboxes but its own lane: not the gateway's JetStream replies, nor
            # what another site is asked.
            "_INBOX_gateway.x",
            f"_INBOX_gateway.site-{OTHER}.x",
            f"_INBOX_operator.site-{OTHER}.x",
        ):
            assert await party.refused_publish(subject), subject
        for subject in (
            "onestop.events.>",
            "onestop.reports.>",
            f"onestop.site.{OTHER}.>",  # another site's relays
            f"$JS.site-{OTHER}.API.>",  # another site's domain
            # Its own log: only the mirror's calls, never one that changes or deletes it.
            f"$JS.site-{SITE}.API.STREAM.DELETE.{EVENTS_STREAM}",
            f"$JS.site-{SITE}.API.STREAM.PURGE.{EVENTS_STREAM}",
            f"$JS.site-{SITE}.API.CONSUMER.CREATE.KV_ONESTOP_RECORDS",
            f"onestop.submit.{SITE}",
            "province.*.inbox.>",
        ):
            assert await party.refused_subscribe(subject), subject
    finally:
        await party.client.close()


async def test_nothing_but_the_sites_own_traffic_crosses_its_leaf(
    secured: SecuredSite, subprocess_env: dict[str, str]
) -> None:
    """Across the real leaf connection: the site's admin key reaches no submit subject of the
    city's gateway, and the city's admin key cannot delete the site's log through its domain."""
    world = secured
    with site_serving(world, subprocess_env):
        gateway = Gateway(world.deployment.settings("gateway"), StreamSettings(), world.registry)
        await gateway.start()
        try:
            await linked(world)
            site_admin = await connection.connect(world.at_site("admin"), service=False)
            try:
                # The site's gateway answers: not its unit (the city's gateway was not reached).
                reply = await submit(site_admin, OTHER, ev.received("HS-X", unit=OTHER))
                assert error_of(reply) == ("unavailable", None)
                assert "written by the city's gateway" in reply["error"]["message"]
            finally:
                await site_admin.close()
            async with world.deployment.party("operator") as operator:
                assert await log_subjects(operator.client) == {}
            async with world.deployment.party("admin") as admin:
                delete = f"$JS.site-{SITE}.API.STREAM.DELETE.{EVENTS_STREAM}"
                with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
                    await admin.client.request(delete, b"", timeout=2)
            site_operator = await connection.connect(world.at_site("operator"), service=False)
            try:
                info = await site_operator.jetstream().stream_info(EVENTS_STREAM)
                assert info.config.name == EVENTS_STREAM  # still there
            finally:
                await site_operator.close()
        finally:
            await gateway.stop()


async def test_the_city_gateway_key_opens_nothing_at_the_site_nor_the_sites_at_the_city(
    secured: SecuredSite, subprocess_env: dict[str, str]
) -> None:
    world = secured
    parties = {p.name: p for p in load_parties(world.folder)}
    assert site_gateway_party(SITE) in parties
    city_users = (world.folder / "authorization.conf").read_text()
    site_users = (world.folder / "leaf" / f"{SITE}-authorization.conf").read_text()
    site_key = parties[site_gateway_party(SITE)].public_key
    city_key = parties["gateway"].public_key
    assert site_key is not None
    assert city_key is not None
    assert site_key in site_users
    assert site_key not in city_users
    assert city_key in city_users
    assert city_key not in site_users
    with site_serving(world, subprocess_env):
        for settings in (
            world.at_site("gateway"),
            world.deployment.settings(site_gateway_party(SITE)),
        ):
            with pytest.raises(nats.errors.Error) as refused:
                await connection.connect(settings, service=False)
            assert "authorization violation" in str(refused.value).lower()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--city-leaf", "nats-leaf://c:7422"], "--city-leaf does not go with --security"),
        (["--leaf-creds", "x.creds"], "--leaf-creds does not go with --security"),
        (["--leaf-listen", "0.0.0.0:7422"], "--leaf-listen does not go with --security"),
    ],
)
def test_leaf_options_beside_security_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    registry = site_registry(tmp_path / "units.json")
    folder = tmp_path / "security"
    init(folder, Registry.load(registry), Layout(listen_host="127.0.0.1", port=free_port()))
    argv = ["serve", "--security", str(folder), "--registry", str(registry), "--site", SITE]
    assert cli.main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert said in err[0]


def test_an_embedded_server_refuses_a_domain_or_leaf_beside_its_own_configuration(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "nats-server.conf"
    conf.write_text("listen: 127.0.0.1:-1\n")
    for options in ({"domain": "site-21550"}, {"extra_config": "leafnodes { listen: 7422 }\n"}):
        with pytest.raises(ValueError, match="is run as it is"):
            NatsServer(tmp_path, config_file=conf, **options)  # type: ignore[arg-type]
