"""Issue 10: every party does only its own part, against a real nats-server started with the
configuration `lienthong security init` wrote. Each right is held both ways: what the party may
do works, what it may not is refused by the server (a permission violation), not by lienthong.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
import structlog
from nats.js.api import DeliverPolicy

from consumers.reports.projector import ReportProjector
from gateway.service import Gateway
from lienthong import certificates, cli
from lienthong.demo.province_sim import ProvinceSettings, ProvinceSimulator
from lienthong.embedded import find_nats_server
from lienthong.node import Node
from lienthong.parties import Party, Role, load_parties
from lienthong.security import Layout, init, public_key
from plumbing import connection
from plumbing.jetstream import JetStream
from plumbing.settings import NatsSettings, StreamSettings
from plumbing.streams import EVENTS_STREAM, REPORTS_STREAM, SEALS_STREAM
from schemas.registry import Registry, RegistryFile
from schemas.report import Report
from tests import events as ev
from tests.helpers import (
    FAST_PROJECTOR,
    LienthongProcess,
    SecureDeployment,
    free_port,
    log_size,
    secure_deployment,
    submit,
    until,
)

API = "$JS.API"
WARD, OTHER_WARD, CITY, PROVINCE = ev.WARD, ev.OTHER_WARD, ev.CITY, ev.PROVINCE


@pytest.fixture(autouse=True)
def _logs_unbound() -> Iterator[None]:
    """`cli.main` binds the logs to the stderr of its moment (pytest's capture of one test)."""
    yield
    structlog.reset_defaults()
    connection.PERMISSION_DENIED.clear()  # this process's refusals: not the next test's


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[SecureDeployment]:
    with secure_deployment(tmp_path / "security") as running:
        yield running


@pytest.fixture
async def gateway(deployment: SecureDeployment) -> AsyncIterator[Gateway]:
    """The gateway service on its own key (it provisions the streams)."""
    service = Gateway(deployment.settings("gateway"), StreamSettings(), Registry.load())
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def stored(deployment: SecureDeployment) -> SecureDeployment:
    """A log with one of WARD's dossiers in it, submitted by WARD's own system, and a report."""

    async def fill() -> None:
        registry = Registry.load()
        service = Gateway(deployment.settings("gateway"), StreamSettings(), registry)
        await service.start()
        projector_client = await connection.connect(deployment.settings("gateway"))
        projector = ReportProjector(projector_client, registry, FAST_PROJECTOR)
        await projector.start()
        try:
            async with deployment.party(f"unit-{WARD}") as unit:
                replies = await submit(unit.client, WARD, [ev.received("HS-1")])
                assert replies[0]["ok"], replies
            await projector.wait_until_current()
        finally:
            await projector.stop()
            await projector_client.close()
            await service.stop()

    asyncio.run(fill())
    return deployment


# --- what security init writes -----------------------------------------------------------


def said(stderr: str) -> list[str]:
    """A command's lines on stderr, each without its `lienthong <command>: ` prefix."""
    return [
        line.split(": ", 1)[1] if line.startswith("lienthong ") and ": " in line else line
        for line in stderr.strip().splitlines()
    ]


def test_init_writes_a_private_key_per_party_and_parties_json_naming_their_rights(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "security"
    registry = Registry.load()
    init(folder, registry, Layout())
    parties = json.loads((folder / "parties.json").read_text())["parties"]
    names = {p["name"] for p in parties}
    units = [c for c in registry.codes() if c != PROVINCE]
    wards = [c for c in units if registry[c].level.value in ("ward", "commune")]
    assert names == {
        "admin",
        "gateway",
        "operator",
        "supervisor",
        "dashboard",
        f"province-{PROVINCE}",
        *(f"unit-{u}" for u in units),
        *(f"site-{u}" for u in wards),
        *(f"site-gateway-{u}" for u in wards),
    }
    for party in parties:
        creds = folder / party["credentials"]
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600, creds
        assert party["permissions"]["publish"], party
        if party["role"] == "site":  # a leaf connection: a generated password
            assert (folder / "leaf" / f"{party['unit']}.conf").exists()
            assert (folder / "leaf" / f"{party['unit']}-authorization.conf").exists()
            continue
        assert creds.read_text().startswith("SU")  # an NKey user seed, as every client takes it
        assert party["public_key"].startswith("U")
    ward = next(p for p in parties if p["name"] == f"unit-{WARD}")
    assert ward["role"] == "unit"
    assert ward["unit"] == WARD
    assert ward["inbox_prefix"] == f"_INBOX_unit-{WARD}"
    assert ward["permissions"]["subscribe"] == [f"_INBOX_unit-{WARD}.>"]
    for private in ("nats-server.conf", "authorization.conf", "secrets.json"):
        assert stat.S_IMODE((folder / private).stat().st_mode) == 0o600


def test_every_written_configuration_is_one_nats_server_accepts(tmp_path: Path) -> None:
    folder = tmp_path / "security"
    init(folder, Registry.load(), Layout(hosts=("nats-a", "nats-b", "nats-c"), tls=True))
    configs = [
        folder / "nats-server.conf",
        *sorted((folder / "cluster").glob("node-*.conf")),
        folder / "leaf" / f"{WARD}.conf",
    ]
    assert len(configs) == 5
    for config in configs:
        check = subprocess.run(
            [str(find_nats_server()), "-t", "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, (config, check.stderr)
    for party in _parties(folder):
        if party.role is Role.SITE_GATEWAY:  # on its own site's loopback only, without TLS
            assert party.tls is None
            continue
        assert party.tls is not None
        assert stat.S_IMODE((folder / party.tls.key).stat().st_mode) == 0o600
        assert (folder / party.tls.cert).exists()
    node = (folder / "cluster" / "node-1.conf").read_text()
    secrets_file = json.loads((folder / "secrets.json").read_text())
    # Routes carry the generated password, never one kept by hand.
    assert f"route:{secrets_file['route_password']}@nats-b:6222" in node
    assert "authorization" in node


def small_registry(path: Path, codes: set[str]) -> Path:
    units = [u for u in Registry.load().codes() if u in codes]
    full = Registry.load()
    path.write_bytes(msgspec.json.encode(RegistryFile(units=[full[u] for u in units])))
    return path


def test_a_larger_registry_adds_parties_and_keeps_every_key_and_rotate_replaces_one(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "security"
    first = Registry.load(small_registry(tmp_path / "few.json", {PROVINCE, CITY, WARD}))
    added = init(folder, first, Layout())
    assert set(added.added) == {"admin", "gateway", "operator", "supervisor", "dashboard"} | {
        f"province-{PROVINCE}",
        f"unit-{CITY}",
        f"unit-{WARD}",
        f"site-{WARD}",
        f"site-gateway-{WARD}",
    }
    seeds = {p.name: (folder / p.credentials).read_text() for p in _parties(folder)}

    again = init(folder, Registry.load(), Layout())
    assert f"unit-{OTHER_WARD}" in again.added
    after = {p.name: (folder / p.credentials).read_text() for p in _parties(folder)}
    assert {name: after[name] for name in seeds} == seeds

    rotated = init(folder, Registry.load(), Layout(), rotate=(f"unit-{WARD}",))
    assert rotated.rotated == (f"unit-{WARD}",)
    now = {p.name: (folder / p.credentials).read_text() for p in _parties(folder)}
    assert now[f"unit-{WARD}"] != after[f"unit-{WARD}"]
    assert {n: s for n, s in now.items() if n != f"unit-{WARD}"} == {
        n: s for n, s in after.items() if n != f"unit-{WARD}"
    }
    authorization = (folder / "authorization.conf").read_text()
    assert public_key(after[f"unit-{WARD}"]) not in authorization
    assert public_key(now[f"unit-{WARD}"]) in authorization


def _parties(folder: Path) -> list[Party]:
    return load_parties(folder)


def test_rotating_an_unknown_party_is_refused_in_one_line_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "security"
    init(folder, Registry.load(), Layout())
    before = (folder / "parties.json").read_bytes()
    code = cli.main(["security", "init", str(folder), "--rotate", "unit-99999"])
    assert code == 2
    assert said(capsys.readouterr().err) == ["no party unit-99999 to rotate (see parties.json)"]
    assert (folder / "parties.json").read_bytes() == before


# --- nobody anonymous, nobody with a wrong CA ----------------------------------------------


async def test_an_anonymous_connection_is_refused(deployment: SecureDeployment) -> None:
    anonymous = NatsSettings(servers=(deployment.server.url,))
    with pytest.raises(nats.errors.Error) as refused:
        await connection.connect(anonymous, service=False)
    assert "authorization violation" in str(refused.value).lower()


def test_a_command_without_credentials_says_so_in_one_line(
    deployment: SecureDeployment, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["status", "--nats-url", deployment.server.url])
    assert code == 2
    err = said(capsys.readouterr().err)
    assert len(err) == 1
    assert err[0].startswith(f"NATS at {deployment.server.url} refused these credentials")


def test_a_command_that_cannot_reach_nats_says_where_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    assert cli.main(["status", "--nats-url", url]) == 2
    err = said(capsys.readouterr().err)
    assert err == [
        f"cannot reach NATS at {url}: start it (`lienthong serve` runs an embedded one) or give "
        "the right --nats-url / LIENTHONG_NATS_URL"
    ]


async def test_tls_clients_verify_the_server_and_one_trusting_another_ca_is_refused(
    tmp_path: Path,
) -> None:
    with secure_deployment(tmp_path / "security", tls=True) as deployment:
        async with deployment.party(f"unit-{WARD}") as unit:  # the deployment's own CA
            assert unit.client.is_connected
        other_ca, _ = certificates.make_ca(tmp_path / "other")
        settings = deployment.settings(f"unit-{WARD}", tls_ca=other_ca)
        with pytest.raises(ssl.SSLCertVerificationError):
            await connection.connect(settings, service=False)


async def test_a_tls_client_presenting_another_cas_certificate_or_none_is_refused(
    tmp_path: Path,
) -> None:
    with secure_deployment(tmp_path / "security", tls=True) as deployment:
        own = deployment.settings(f"unit-{WARD}")
        assert own.tls_cert is not None  # found in parties.json from --creds alone
        certificates.make_ca(tmp_path / "other")
        cert, key = certificates.make_client_cert(tmp_path / "other", f"unit-{WARD}")
        foreign = msgspec.structs.replace(own, tls_cert=cert, tls_key=key)
        with pytest.raises((nats.errors.Error, OSError)):
            await connection.connect(foreign, service=False)
        without = msgspec.structs.replace(own, tls_cert=None, tls_key=None)
        with pytest.raises((nats.errors.Error, OSError)):
            await connection.connect(without, service=False)


# --- a unit --------------------------------------------------------------------------------


async def test_a_unit_submits_as_itself_and_gets_its_reply(
    deployment: SecureDeployment, gateway: Gateway
) -> None:
    async with deployment.party(f"unit-{WARD}") as unit:
        replies = await submit(unit.client, WARD, [ev.received("HS-1")])
        assert replies[0]["ok"], replies
        assert unit.refused == []


async def test_a_unit_cannot_submit_as_another(
    deployment: SecureDeployment, gateway: Gateway
) -> None:
    async with deployment.party(f"unit-{WARD}") as unit:
        assert await unit.refused_publish(f"onestop.submit.{OTHER_WARD}")
        assert await unit.refused_publish(f"onestop.inbound.{WARD}")  # the province's part


async def test_a_unit_cannot_read_another_units_replies(deployment: SecureDeployment) -> None:
    async with deployment.party(f"unit-{WARD}") as unit:
        assert await unit.refused_subscribe(f"_INBOX_unit-{OTHER_WARD}.>")
        assert await unit.refused_subscribe("_INBOX.>")
        assert await unit.refused_subscribe(">")
        assert await unit.refused_subscribe(f"onestop.submit.{OTHER_WARD}")


async def test_a_unit_reads_its_own_reports_and_those_below_it_and_no_others(
    stored: SecureDeployment,
) -> None:
    async with stored.party(f"unit-{WARD}") as ward:
        js = JetStream(ward.client, 5.0)
        own = await js.last_on_subject(REPORTS_STREAM, f"onestop.reports.{WARD}.2021-04")
        assert own is not None
        assert await ward.refused_publish(
            f"{API}.DIRECT.GET.{REPORTS_STREAM}.onestop.reports.{OTHER_WARD}.2021-04"
        )
        assert await ward.refused_publish(f"{API}.DIRECT.GET.{REPORTS_STREAM}")  # by sequence
    async with stored.party(f"unit-{CITY}") as city:  # the city reads its wards' reports
        js = JetStream(city.client, 5.0)
        below = await js.last_on_subject(REPORTS_STREAM, f"onestop.reports.{WARD}.2021-04")
        assert below is not None
        assert city.refused == []


async def test_a_unit_cannot_read_the_log_create_consumers_or_manage_streams(
    stored: SecureDeployment,
) -> None:
    async with stored.party(f"unit-{WARD}") as unit:
        for subject in (
            f"{API}.DIRECT.GET.{EVENTS_STREAM}.onestop.events.{WARD}.dossier.HS-1",
            f"{API}.DIRECT.GET.{EVENTS_STREAM}",
            f"{API}.STREAM.MSG.GET.{EVENTS_STREAM}",
            f"{API}.CONSUMER.CREATE.{EVENTS_STREAM}",
            f"{API}.CONSUMER.CREATE.{REPORTS_STREAM}",
            f"{API}.CONSUMER.DURABLE.CREATE.{REPORTS_STREAM}.mine",
            f"{API}.STREAM.INFO.{EVENTS_STREAM}",
            f"{API}.STREAM.DELETE.{REPORTS_STREAM}",
            f"{API}.STREAM.PURGE.{REPORTS_STREAM}",
        ):
            assert await unit.refused_publish(subject), subject
        assert await unit.refused_subscribe(f"onestop.events.{WARD}.>")


async def test_a_unit_cannot_publish_into_the_event_log_or_the_reports(
    stored: SecureDeployment,
) -> None:
    async with stored.party(f"unit-{WARD}") as unit:
        assert await unit.refused_publish(f"onestop.events.{WARD}.dossier.HS-2")
        assert await unit.refused_publish(f"onestop.reports.{WARD}.2021-04")
        assert await unit.refused_publish("onestop.seals")
        assert await unit.refused_publish(f"onestop.eventids.{WARD}.x")
    async with stored.party("operator") as operator:
        assert await log_size(operator.client) == 1


# --- the province --------------------------------------------------------------------------


async def test_the_province_reads_reports_and_seals_and_writes_no_stream(
    stored: SecureDeployment,
) -> None:
    async with stored.party(f"province-{PROVINCE}") as province:
        js = province.client.jetstream()
        sub = await js.subscribe(
            "onestop.reports.>",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        msg = await sub.next_msg(timeout=10)
        assert json.loads(msg.data)["unit"] == WARD
        await sub.unsubscribe()
        direct = JetStream(province.client, 5.0)
        report = await direct.last_on_subject(REPORTS_STREAM, f"onestop.reports.{WARD}.2021-04")
        assert report is not None
        assert await direct.last_on_subject(SEALS_STREAM, "onestop.seals") is None  # none yet
        assert province.refused == []
        inbox = await province.client.subscribe(f"province.{PROVINCE}.inbox.{WARD}")
        await province.client.flush()
        async with stored.party("gateway") as gateway_party:  # as the forwarder sends
            await gateway_party.client.publish(f"province.{PROVINCE}.inbox.{WARD}", b"{}")
            await gateway_party.client.flush()
        assert (await inbox.next_msg(timeout=10)).data == b"{}"
        for subject in (
            f"onestop.reports.{WARD}.2021-04",
            f"onestop.events.{WARD}.dossier.HS-1",
            "onestop.seals",
            f"onestop.outbox.{WARD}.x",
            f"{API}.DIRECT.GET.{EVENTS_STREAM}",
            f"{API}.DIRECT.GET.{REPORTS_STREAM}.onestop.reports.99.2021-04",  # not its unit
            f"{API}.STREAM.DELETE.{REPORTS_STREAM}",
            f"{API}.STREAM.PURGE.{SEALS_STREAM}",
            f"{API}.STREAM.UPDATE.{REPORTS_STREAM}",
            f"{API}.STREAM.MSG.DELETE.{REPORTS_STREAM}",
            f"onestop.submit.{WARD}",
        ):
            assert await province.refused_publish(subject), subject


# --- the operator, the supervisor, the gateway, the admin ----------------------------------


def test_the_operator_rebuilds_verifies_exports_and_shows_history(
    stored: SecureDeployment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, creds = stored.server.url, str(stored.creds("operator"))
    common = ["--nats-url", url, "--creds", creds]
    assert cli.main(["rebuild", "--unit", WARD, "--period", "2021-04", *common]) == 0
    assert cli.main(["verify", *common]) == 0
    out = tmp_path / "export.jsonl"
    assert cli.main(["export", "--period", "2021-04", "--output", str(out), *common]) == 0
    assert len(out.read_text().splitlines()) == 1
    assert cli.main(["history", "--unit", WARD, "--dossier", "HS-1", *common]) == 0
    assert cli.main(["status", *common]) == 0
    captured = capsys.readouterr()
    assert "permission denied" not in captured.err
    assert "dossier.received" in captured.out


async def test_the_operator_cannot_publish_delete_purge_or_update(
    stored: SecureDeployment,
) -> None:
    async with stored.party("operator") as operator:
        for subject in (
            f"onestop.events.{WARD}.dossier.HS-9",
            f"onestop.reports.{WARD}.2021-04",
            "onestop.seals",
            f"onestop.submit.{WARD}",
            "$KV.ONESTOP_DELIVERIES.x",
            f"{API}.STREAM.DELETE.{EVENTS_STREAM}",
            f"{API}.STREAM.PURGE.{REPORTS_STREAM}",
            f"{API}.STREAM.UPDATE.{EVENTS_STREAM}",
            f"{API}.STREAM.CREATE.MINE",
            f"{API}.STREAM.MSG.DELETE.{REPORTS_STREAM}",
            f"{API}.CONSUMER.DELETE.{EVENTS_STREAM}.reports-projector",
            f"{API}.CONSUMER.DURABLE.CREATE.{EVENTS_STREAM}.mine",
        ):
            assert await operator.refused_publish(subject), subject
        # The ephemeral form of consumer creation refuses a durable name: no durable this way.
        reply = await operator.client.request(
            f"{API}.CONSUMER.CREATE.{EVENTS_STREAM}",
            json.dumps({"stream_name": EVENTS_STREAM, "config": {"durable_name": "mine"}}).encode(),
            timeout=5,
        )
        assert "error" in json.loads(reply.data)


def test_the_supervisor_resumes_deliveries_and_the_operator_may_not(
    stored: SecureDeployment, capsys: pytest.CaptureFixture[str]
) -> None:
    url = stored.server.url
    supervisor = ["--nats-url", url, "--creds", str(stored.creds("supervisor"))]
    assert cli.main(["resume-delivery", *supervisor]) == 0
    capsys.readouterr()
    operator = ["--nats-url", url, "--creds", str(stored.creds("operator"))]
    assert cli.main(["resume-delivery", *operator]) == 2
    err = said(capsys.readouterr().err)
    assert err == [
        "permission denied: party operator may not publish to "
        "onestop.operations.resume-delivery; ask the operator for that right "
        "(parties.json lists every party's)"
    ]


def test_a_command_lacking_a_right_names_it_in_one_line(
    stored: SecureDeployment, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--nats-url", stored.server.url, "--creds", str(stored.creds(f"unit-{WARD}"))]
    code = cli.main(["report", "--unit", OTHER_WARD, "--period", "2021-04", *common])
    assert code == 2
    err = said(capsys.readouterr().err)
    assert err == [
        f"permission denied: party unit-{WARD} may not publish to "
        f"$JS.API.DIRECT.GET.ONESTOP_REPORTS.onestop.reports.{OTHER_WARD}.2021-04; "
        "ask the operator for that right (parties.json lists every party's)"
    ]


async def test_only_the_admin_deletes_a_stream(stored: SecureDeployment) -> None:
    async with stored.party("gateway") as gateway_party:
        assert await gateway_party.refused_publish(f"{API}.STREAM.DELETE.{REPORTS_STREAM}")
    async with stored.party("admin") as admin:
        assert await admin.client.jetstream().delete_stream(REPORTS_STREAM)


# --- the whole flow ------------------------------------------------------------------------


async def test_submit_report_and_interconnection_with_every_party_on_its_own_credentials(
    deployment: SecureDeployment,
) -> None:
    registry = Registry.load()
    node = Node(
        deployment.settings("gateway"),
        StreamSettings(),
        registry,
        FAST_PROJECTOR,
    )
    await node.start()
    province_client = await connection.connect(deployment.settings(f"province-{PROVINCE}"))
    province = ProvinceSimulator(province_client, ProvinceSettings(province=PROVINCE))
    await province.start()
    try:
        async with deployment.party(f"unit-{WARD}") as unit:
            replies = await submit(
                unit.client,
                WARD,
                [
                    ev.received("HS-1"),
                    ev.dossier_event("transferred", "HS-1", interconnect=True),
                ],
            )
            assert all(r["ok"] for r in replies), replies
            await until(lambda: province.results_acknowledged == 1, what="the province's result")
            assert node.projector is not None
            await node.projector.wait_until_current()
        async with deployment.party(f"unit-{CITY}") as city:
            js = JetStream(city.client, 5.0)

            async def resolved() -> bool:
                found = await js.last_on_subject(REPORTS_STREAM, f"onestop.reports.{CITY}.2021-04")
                if found is None:
                    return False
                return msgspec.json.decode(found.data, type=Report).unit == CITY

            await until(resolved, what="the city's report")
            assert city.refused == []
    finally:
        await province.stop()
        await province_client.close()
        await node.stop()


@pytest.mark.slow
def test_the_demo_with_security_on_prints_the_same_april_report(
    subprocess_env: dict[str, str],
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "lienthong.cli", "demo", "--secure"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "security on: every party's key and rights in" in run.stdout
    assert "Matches the city's published April 2021 report figure for figure." in run.stdout
    assert ", 0 refused" in run.stdout
    assert "permission denied" not in run.stderr


def test_deploys_cluster_and_leaf_configurations_are_what_security_init_writes(
    tmp_path: Path,
) -> None:
    deploy = Path(__file__).resolve().parent.parent / "deploy"
    copy = tmp_path / "deploy"
    # A ward site's configuration is `lienthong site init`'s (deploy/site), not a wrapper.
    wrappers = sorted((deploy / "cluster").glob("node-*.conf"))
    for wrapper in wrappers:
        target = copy / wrapper.parent.name / wrapper.name
        target.parent.mkdir(parents=True, exist_ok=True)
        text = wrapper.read_text()
        assert "password:" not in text  # nothing kept by hand
        target.write_text(text)
    init(copy / "security", Registry.load(), Layout(hosts=("node-1", "node-2", "node-3")))
    for wrapper in wrappers:
        config = copy / wrapper.parent.name / wrapper.name
        check = subprocess.run(
            [str(find_nats_server()), "-t", "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, (config, check.stderr)


def test_serve_runs_the_embedded_server_with_security_on_as_the_gateway_party(
    tmp_path: Path, subprocess_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "security"
    port = free_port()
    init(folder, Registry.load(), Layout(listen_host="127.0.0.1", port=port, leaf_port=-1))
    serve = LienthongProcess(
        [sys.executable, "-m", "lienthong.cli", "serve", "--security", str(folder)], subprocess_env
    )
    try:
        serve.wait_for("lienthong serving on")
        assert f"authorization from {folder / 'nats-server.conf'}" in serve.stderr
        events = tmp_path / "events.jsonl"
        events.write_text(json.dumps(ev.received("HS-1")) + "\n")
        url = f"nats://127.0.0.1:{port}"
        ward = ["--nats-url", url, "--creds", str(folder / "creds" / f"unit-{WARD}.nk")]
        assert cli.main(["submit", str(events), "--unit", WARD, *ward]) == 0
        assert "1 accepted" in capsys.readouterr().out
        assert cli.main(["submit", str(events), "--unit", OTHER_WARD, *ward]) == 2
        err = said(capsys.readouterr().err)
        assert err == [
            f"permission denied: party unit-{WARD} may not publish to "
            f"onestop.submit.{OTHER_WARD}; ask the operator for that right "
            "(parties.json lists every party's)"
        ]
        assert cli.main(["submit", str(events), "--unit", WARD, "--nats-url", url]) == 2
        assert "refused these credentials" in capsys.readouterr().err
    finally:
        assert serve.stop() == 0


def test_only_the_supervisor_reads_and_erases_personal_data(
    deployment: SecureDeployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """#11 under the parties: the operator may neither open an applicant nor erase one."""
    applicant = {"name": "Nguyễn Văn An", "id_number": "052099001234"}

    async def fill() -> None:
        service = Gateway(deployment.settings("gateway"), StreamSettings(), Registry.load())
        await service.start()
        try:
            async with deployment.party(f"unit-{WARD}") as unit:
                replies = await submit(
                    unit.client, WARD, [ev.received("HS-P", applicant=applicant)]
                )
                assert replies[0]["ok"], replies
        finally:
            await service.stop()

    asyncio.run(fill())
    url = deployment.server.url
    dossier = ["--unit", WARD, "--dossier", "HS-P"]
    operator = ["--nats-url", url, "--creds", str(deployment.creds("operator"))]
    supervisor = ["--nats-url", url, "--creds", str(deployment.creds("supervisor"))]
    assert cli.main(["history", *dossier, "--show-personal-data", *operator]) == 2
    assert said(capsys.readouterr().err)[0].startswith("permission denied: party operator")
    assert cli.main(["erase", *dossier, "--reason", "asked", *operator]) == 2
    assert said(capsys.readouterr().err)[0].startswith("permission denied: party operator")
    assert cli.main(["history", *dossier, "--show-personal-data", *supervisor]) == 0
    assert applicant["name"] in capsys.readouterr().out
    assert cli.main(["erase", *dossier, "--reason", "asked", *supervisor]) == 0
    capsys.readouterr()
